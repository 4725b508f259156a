package test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest/nsopen"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/nsnet"
)

// tcpEcho serves ln until it is closed: every connection gets back what
// it sent, and a half-close once the client's stream has ended.
func tcpEcho(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(interface{ CloseWrite() error }).CloseWrite()
			}()
		}
	}()
}

// udpEcho answers every datagram with the same bytes.
func udpEcho(t *testing.T, pc net.PacketConn) {
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			pc.WriteTo(b[:n], from)
		}
	}()
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// TestForwardTCP: a service bound to 127.0.0.1 inside a namespace is
// reached from the host through forward by 1,000 concurrent connections,
// each carrying checksummed data both ways.
func TestForwardTCP(t *testing.T) {
	name, ns := nsopen.New(t)
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, svc)
	// The host has no such service: only the namespace's loopback has it.
	p, addr := startForward(t, name, "0", port(svc.Addr().String()), "-v")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("forward listens on %s, want loopback by default", addr)
	}

	const conns, size = 1000, 16 << 10
	var (
		ready, wg sync.WaitGroup
		start     = make(chan struct{})
		errs      = make(chan error, conns)
	)
	ready.Add(conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 20*time.Second)
			ready.Done()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			<-start // every connection is open before any data flows
			c.SetDeadline(time.Now().Add(60 * time.Second))
			data := make([]byte, size)
			rand.Read(data)
			go func() { c.Write(data); c.(*net.TCPConn).CloseWrite() }()
			h := sha256.New()
			n, err := io.Copy(h, c)
			if err != nil || n != size || !bytes.Equal(h.Sum(nil), sha(data)) {
				errs <- fmt.Errorf("echo: %d of %d bytes, checksum match %v, %v", n, size, bytes.Equal(h.Sum(nil), sha(data)), err)
			}
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed", failed, conns)
	}
	nstest.CheckThreadsOf(t, p.cmd.Process.Pid)
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("forward exited %d after SIGINT; stderr:\n%s", code, p.stderr.String())
	}
	want := fmt.Sprintf("forward: %d connections (0 failed), %d bytes to the target, %d bytes back", conns, conns*size, conns*size)
	if !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, lastLines(p.stderr.String(), 5))
	}
	if n := strings.Count(p.stderr.String(), " closed after "); n != conns {
		t.Errorf("-v printed %d connection lines, want %d", n, conns)
	}
	nstest.CheckThreads(t)
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestForwardHalfClose: each side's end of stream crosses forward while the
// other direction keeps flowing.
func TestForwardHalfClose(t *testing.T) {
	name, ns := nsopen.New(t)
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	got := make(chan string, 1)
	go func() {
		c, err := svc.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// The service speaks first and half-closes, then reads the
		// client's whole stream and answers with its checksum: both
		// half-closes must cross forward for this to finish.
		c.Write([]byte("greeting"))
		b, _ := io.ReadAll(io.LimitReader(c, 1<<20))
		got <- string(b)
	}()
	p, addr := startForward(t, name, "0", port(svc.Addr().String()))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 8)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "greeting" {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Write([]byte("after the greeting"))
	c.(*net.TCPConn).CloseWrite()
	if s := <-got; s != "after the greeting" {
		t.Fatalf("service read %q", s)
	}
	if _, err := c.Read(b); err != io.EOF {
		t.Fatalf("client: %v, want EOF after the service closed", err)
	}
	// Now the other order: the client half-closes first.
	svc2, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := svc2.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c) // ends only when the client half-closes
		c.Write(sha(data))
	}()
	p.stop(t, syscall.SIGTERM)
	p2, addr2 := startForward(t, name, "0", port(svc2.Addr().String()))
	c2, err := net.Dial("tcp", addr2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, 1<<20)
	rand.Read(data)
	c2.Write(data)
	c2.(*net.TCPConn).CloseWrite()
	sum, err := io.ReadAll(c2)
	if err != nil || !bytes.Equal(sum, sha(data)) {
		t.Fatalf("checksum back %x, %v", sum, err)
	}
	if code := p2.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM: %s", code, p2.stderr.String())
	}
	svc2.Close()
}

// TestForwardUDP: datagrams reach a UDP service on the namespace's
// loopback, each client has its own session, and idle sessions end.
func TestForwardUDP(t *testing.T) {
	name, ns := nsopen.New(t)
	svc, err := nsnet.ListenPacket(ns, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpEcho(t, svc)
	p, addr := startForward(t, name, "--udp", "-v", "--udp-timeout", "500ms", "0", port(svc.LocalAddr().String()))
	const clients, msgs = 5, 20
	for i := 0; i < clients; i++ {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < msgs; j++ {
			msg := []byte(fmt.Sprintf("client %d message %d", i, j))
			var n int
			// UDP may drop; retry a bounded number of times.
			for try := 0; try < 5; try++ {
				c.Write(msg)
				c.SetReadDeadline(time.Now().Add(time.Second))
				b := make([]byte, 100)
				if n, err = c.Read(b); err == nil {
					if string(b[:n]) != string(msg) {
						t.Fatalf("got %q, want %q", b[:n], msg)
					}
					break
				}
			}
			if err != nil {
				t.Fatalf("client %d message %d: %v", i, j, err)
			}
		}
		c.Close()
	}
	// Every session ends on its own after the idle timeout.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.stderr.String(), " closed after ") < clients && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(p.stderr.String(), " closed after "); n != clients {
		t.Fatalf("%d sessions ended, want %d:\n%s", n, clients, p.stderr.String())
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), fmt.Sprintf("forward: %d sessions (0 failed)", clients)) {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
}

// TestForwardReverse: a service on the host's loopback is reached from
// inside the namespace by clients run with ip netns exec.
func TestForwardReverse(t *testing.T) {
	nstest.RequireTools(t, "socat")
	name, _ := nsopen.New(t)
	hsvc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, hsvc)
	usvc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpEcho(t, usvc)

	p, addr := startForward(t, name, "--reverse", "0", hsvc.Addr().String())
	if !strings.Contains(p.stderr.String(), " in "+name+" -> "+hsvc.Addr().String()+" on the host") {
		t.Errorf("first line: %s", p.stderr.String())
	}
	cmd := exec.Command("ip", "netns", "exec", name, "socat", "-t5", "-", "TCP:"+addr)
	cmd.Stdin = strings.NewReader("ping over tcp\n")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "ping over tcp\n" {
		t.Fatalf("socat inside %s: %q, %v", name, out, err)
	}
	// The listener is inside the namespace only.
	if ss := nstest.Run(t, "ip", "netns", "exec", name, "ss", "-Htln"); !strings.Contains(ss, addr) {
		t.Errorf("ss inside does not list %s:\n%s", addr, ss)
	}
	p.stop(t, syscall.SIGINT)

	pu, uaddr := startForward(t, name, "--reverse", "--udp", "0", usvc.LocalAddr().String())
	cmd = exec.Command("ip", "netns", "exec", name, "socat", "-T2", "-", "UDP:"+uaddr)
	cmd.Stdin = strings.NewReader("ping over udp\n")
	out, err = cmd.CombinedOutput()
	if err != nil || string(out) != "ping over udp\n" {
		t.Fatalf("socat udp inside %s: %q, %v", name, out, err)
	}
	if code := pu.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, pu.stderr.String())
	}
}

// TestForwardTargetRefuses: every client gets a closed connection and a
// line on stderr, and forward goes on serving.
func TestForwardTargetRefuses(t *testing.T) {
	name, ns := nsopen.New(t)
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := port(svc.Addr().String())
	svc.Close() // nothing listens there now
	p, addr := startForward(t, name, "0", dead)
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("read %d, %v; want a closed connection", n, err)
		}
		c.Close()
	}
	p.waitStderr(t, `(?s)(connection refused.*){3}`)
	select {
	case <-p.done:
		t.Fatalf("forward exited: %s", p.stderr.String())
	default:
	}
	// Now the service comes up, and the same forwarder reaches it.
	svc, err = nsnet.Listen(ns, "tcp", "127.0.0.1:"+dead)
	if err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, svc)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("up"))
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); string(b) != "up" {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Close()
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(p.stderr.String(), "4 connections (3 failed)") {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
}

// TestForwardNamespaceGone: forward exits 1 with a clear line when its
// namespace's process exits or its name is deleted.
func TestForwardNamespaceGone(t *testing.T) {
	nstest.RequireRoot(t)
	sleeper := exec.Command("unshare", "-n", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	pid := strconv.Itoa(sleeper.Process.Pid)
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 1000; i++ { // until unshare has made the namespace
		if l, _ := os.Readlink("/proc/" + pid + "/ns/net"); l != self && l != "" {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	p, _ := startForward(t, pid, "0", "80")
	sleeper.Process.Kill()
	sleeper.Wait()
	if code := p.wait(t); code != 1 || !strings.Contains(p.stderr.String(), "netobs: forward: namespace "+pid+" went away: process "+pid+" exited") {
		t.Fatalf("exit %d, stderr:\n%s", code, p.stderr.String())
	}

	name := nstest.NetNS(t)
	p2, _ := startForward(t, name, "--udp", "0", "53")
	nstest.Run(t, "ip", "netns", "del", name)
	if code := p2.wait(t); code != 1 || !strings.Contains(p2.stderr.String(), "netobs: forward: namespace "+name+" went away") {
		t.Fatalf("exit %d, stderr:\n%s", code, p2.stderr.String())
	}
}

// TestForwardBadInput: start-up failures give one line and a non-zero
// status before anything is served.
func TestForwardBadInput(t *testing.T) {
	name, ns := nsopen.New(t)
	hostBusy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostBusy.Close()
	nsBusy, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer nsBusy.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{name, "0", "example.com:80"}, 2, "host names are not resolved inside a namespace"},
		{[]string{name, "--reverse", "db.internal:80", "8080"}, 2, "host names are not resolved inside a namespace"},
		{[]string{name, "0", "300.1.1.1:80"}, 2, "not an IP address"},
		{[]string{name, "0", "127.0.0.1:99999"}, 2, "out of range"},
		{[]string{name, "0", "127.0.0.1:http"}, 2, "not a number"},
		{[]string{name, "0", "::1:80"}, 2, "brackets"},
		{[]string{name, "nonsense:port", "80"}, 2, ""},
		{[]string{name, "0"}, 2, "needs NSREF, LISTEN and TARGET"},
		{[]string{name, "--udp-timeout", "0s", "0", "80"}, 2, "must be positive"},
		{[]string{name, "--bogus", "0", "80"}, 2, "unknown flag"},
		{[]string{nstest.UniqueName("no"), "0", "80"}, 1, "no such named network namespace"},
		{[]string{"999999999", "0", "80"}, 1, "no such process"},
		{[]string{"/etc/hostname", "0", "80"}, 1, "not a namespace file"},
		{[]string{name, hostBusy.Addr().String(), "80"}, 1, "address already in use"},
		{[]string{name, "--reverse", nsBusy.Addr().String(), "80"}, 1, "address already in use"},
		{[]string{name, "10.123.45.67:0", "80"}, 1, "assign requested address"},
		{[]string{name, "--reverse", "10.123.45.67:0", "80"}, 1, "not an address of this namespace"},
		{[]string{name, "--reverse", "0", "no-such-host.invalid:80"}, 1, "no-such-host.invalid"},
	} {
		r := netobs(t, append([]string{"forward"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || len(lines) != 1 || !strings.HasPrefix(lines[0], "netobs: ") {
			t.Errorf("forward %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// TestForwardPrivilegedPort: without CAP_NET_BIND_SERVICE, binding port 80
// fails with a line naming the capability, on either side.
func TestForwardPrivilegedPort(t *testing.T) {
	nstest.RequireTools(t, "setpriv")
	name, _ := nsopen.New(t)
	for _, args := range [][]string{
		{name, "127.0.0.1:80", "8080"},
		{name, "--reverse", "127.0.0.1:80", "8080"},
	} {
		cmd := exec.Command("setpriv", append([]string{"--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service", "--", netobsBin, "forward"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "CAP_NET_BIND_SERVICE") {
			t.Errorf("forward %s without CAP_NET_BIND_SERVICE: %v, stderr %q", strings.Join(args, " "), err, stderr.String())
		}
	}
}

// TestForwardTotalsCountOpenConnections: connections still open at
// SIGINT count in the totals line, as in their own lines.
func TestForwardTotalsCountOpenConnections(t *testing.T) {
	name, ns := nsopen.New(t)
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, svc)
	p, addr := startForward(t, name, "0", port(svc.Addr().String()), "-v")
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Write([]byte("hello\n"))
		if _, err := io.ReadFull(c, make([]byte, 6)); err != nil {
			t.Fatal(err)
		}
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	want := "forward: 3 connections (0 failed), 18 bytes to the target, 18 bytes back"
	if !strings.Contains(p.stderr.String(), want) || strings.Count(p.stderr.String(), "6 bytes up, 6 down") != 3 {
		t.Errorf("stderr lacks %q or three connections of 6 bytes each way:\n%s", want, p.stderr.String())
	}
}

// TestForwardIPv4Wildcard: 0.0.0.0:PORT listens on IPv4 only, as socat
// does, and says 0.0.0.0; ss agrees.
func TestForwardIPv4Wildcard(t *testing.T) {
	nstest.RequireTools(t, "ss")
	name, ns := nsopen.New(t)
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, svc)
	for _, proto := range []string{"tcp", "udp"} {
		args := []string{name, "0.0.0.0:0", port(svc.Addr().String())}
		if proto == "udp" {
			args = append(args, "--udp")
		}
		p, addr := startForward(t, args...)
		if !strings.HasPrefix(addr, "0.0.0.0:") {
			t.Errorf("%s: forward 0.0.0.0:0 listens on %s, want 0.0.0.0:PORT", proto, addr)
		}
		flag := "-Htln"
		if proto == "udp" {
			flag = "-Huln"
		}
		out := nstest.Run(t, "ss", flag, "sport = :"+port(addr))
		if f := strings.Fields(out); len(f) < 4 || f[3] != "0.0.0.0:"+port(addr) {
			t.Errorf("%s: ss shows %q, want one socket on 0.0.0.0:%s", proto, out, port(addr))
		}
		p.stop(t, syscall.SIGINT)
	}
}

// TestForwardHalfCloseTimeout: after the service half-closes, a client
// that sends nothing more is cut after --half-close-timeout.
func TestForwardHalfCloseTimeout(t *testing.T) {
	name, ns := nsopen.New(t)
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go func() {
		c, err := svc.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("bye"))
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	}()
	p, addr := startForward(t, name, "-v", "--half-close-timeout", "200ms", "0", port(svc.Addr().String()))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if b, err := io.ReadAll(c); string(b) != "bye" || err != nil {
		t.Fatalf("read %q, %v", b, err)
	}
	p.waitStderr(t, `forward: tcp #1 .* closed after .*, 0 bytes up, 3 down \(half-close timeout\)`)
	p.stop(t, syscall.SIGINT)
}

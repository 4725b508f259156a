package nsnet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest/nsopen"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// The main goroutine stays on the main thread, as nsjoin asks.
func init() { runtime.LockOSThread() }

func openNS(t testing.TB) (string, *nsjoin.NS) {
	t.Helper()
	name, ns := nsopen.New(t)
	// Warm up once, so that fds opened once per process (the poller,
	// nsjoin's handles on the original namespaces) do not count as leaks.
	pc, err := nsnet.ListenPacket(ns, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc.Close()
	return name, ns
}

// checkCloexec fails unless the socket behind c is close-on-exec.
func checkCloexec(t *testing.T, c syscall.Conn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d: close-on-exec not set (flags %#x, %v)", fd, flags, err)
		}
	})
}

// inNS runs a command inside the named namespace with ip netns exec.
func inNS(t *testing.T, name string, args ...string) string {
	t.Helper()
	return nstest.Run(t, "ip", append([]string{"netns", "exec", name}, args...)...)
}

func TestTCPListenAndDialInside(t *testing.T) {
	name, ns := openNS(t)
	fds, _ := sockets()
	ln, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		t.Fatalf("Listen returned %T, want *net.TCPListener", ln)
	}
	checkCloexec(t, tl)
	addr := ln.Addr().String()
	// ss inside the namespace sees the listener; ss in the host does not.
	if out := inNS(t, name, "ss", "-Htln"); !strings.Contains(out, addr) {
		t.Fatalf("ss in %s does not list %s:\n%s", name, addr, out)
	}
	if out := nstest.Run(t, "ss", "-Htln"); strings.Contains(out, addr+" ") {
		t.Logf("host also has a listener on %s (another process?)", addr)
	}

	// A client inside the namespace (ip netns exec) reaches it.
	done := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		done <- string(b)
	}()
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	cmd := exec.Command("ip", "netns", "exec", name, "socat", "-u", "STDIN", "TCP:127.0.0.1:"+port)
	cmd.Stdin = strings.NewReader("hello from inside")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("socat inside: %v: %s", err, out)
	}
	if got := <-done; got != "hello from inside" {
		t.Fatalf("accepted %q", got)
	}

	// Dial from the host process into the namespace; io.Copy both ways.
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := nsnet.Dial(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("Dial returned %T, want *net.TCPConn", c)
	}
	checkCloexec(t, tc)
	msg := bytes.Repeat([]byte("0123456789"), 100000)
	go func() { tc.Write(msg); tc.CloseWrite() }()
	got, err := io.ReadAll(tc)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d bytes back of %d, %v", len(got), len(msg), err)
	}
	tc.Close()
	ln.Close()
	ln.Close() // idempotent
	waitFDs(t, fds)
	nstest.CheckThreads(t)
}

// sockets counts the process's socket fds: other fds come and go with
// the commands the tests run.
func sockets() (n int, links []string) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if strings.HasPrefix(l, "socket:") {
			n++
			links = append(links, e.Name()+"="+l)
		}
	}
	return n, links
}

// waitFDs waits until no more sockets are open than want.
func waitFDs(t *testing.T, want int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if n, _ := sockets(); n <= want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	n, links := sockets()
	t.Errorf("%d sockets open, %d before: %s", n, want, strings.Join(links, " "))
}

func TestNotInHost(t *testing.T) {
	_, ns := openNS(t)
	ln, err := nsnet.Listen(ns, "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The same address from the host: nothing (or something else) there.
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Logf("host has its own listener on %s", ln.Addr())
	}
	// And dialing in a fresh namespace is refused: the socket is only in ns.
	_, ns2 := openNS(t)
	_, err = nsnet.Dial(ns2, "tcp", ln.Addr().String())
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial in another namespace: %v, want connection refused", err)
	}
}

func TestTCP6AndDualStack(t *testing.T) {
	_, ns := openNS(t)
	ln, err := nsnet.Listen(ns, "tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, a := range []struct{ net, addr string }{
		{"tcp4", "127.0.0.1"}, {"tcp6", "[::1]"}, {"tcp", "[::1]"},
	} {
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		c, err := nsnet.Dial(ns, a.net, a.addr+":"+itoa(port))
		if err != nil {
			t.Fatalf("%s: %v", a.net, err)
		}
		c.Close()
	}
}

func TestUDP(t *testing.T) {
	_, ns := openNS(t)
	pc, err := nsnet.ListenPacket(ns, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, ok := pc.(*net.UDPConn); !ok {
		t.Fatalf("ListenPacket returned %T", pc)
	}
	c, err := nsnet.Dial(ns, "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*net.UDPConn); !ok {
		t.Fatalf("Dial udp returned %T", c)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 100)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	pc.WriteTo([]byte("pong"), from)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	// Close unblocks a pending read.
	errc := make(chan error, 1)
	go func() { _, _, err := pc.ReadFrom(buf); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	pc.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestAbstractUnixIsPerNamespace(t *testing.T) {
	_, nsA := openNS(t)
	_, nsB := openNS(t)
	name := "@" + nstest.UniqueName("abs")
	ln, err := nsnet.Listen(nsA, "unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, ok := ln.(*net.UnixListener); !ok {
		t.Fatalf("Listen unix returned %T", ln)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("A"))
			c.Close()
		}
	}()
	if _, err := nsnet.Dial(nsB, "unix", name); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial %s in the other namespace: %v, want connection refused", name, err)
	}
	if _, err := net.Dial("unix", name); err == nil {
		t.Fatalf("dial %s in the host succeeded", name)
	}
	c, err := nsnet.Dial(nsA, "unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*net.UnixConn); !ok {
		t.Fatalf("Dial unix returned %T", c)
	}
	b, _ := io.ReadAll(c)
	if string(b) != "A" {
		t.Fatalf("read %q", b)
	}
}

func TestUnixPathRemovedOnClose(t *testing.T) {
	_, ns := openNS(t)
	path := t.TempDir() + "/s.sock"
	ln, err := nsnet.Listen(ns, "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("socket still answers after close")
	}
	pc, err := nsnet.ListenPacket(ns, "unixgram", "@"+nstest.UniqueName("dg"))
	if err != nil {
		t.Fatal(err)
	}
	pc.Close()
}

func TestDialContextCancelAndTimeout(t *testing.T) {
	name, ns := openNS(t)
	// Nobody answers ARP for 10.77.0.9 on the veth, so a connect there
	// hangs until the context ends.
	peer := nstest.NetNS(t)
	nstest.Veth(t, name, "10.77.0.1/24", peer, "10.78.0.1/24")
	fds, _ := sockets()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := nsnet.DialContext(ctx, ns, "tcp", "10.77.0.9:80")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial: %v, want deadline exceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a net.Error timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("dial took %v", d)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	if _, err := nsnet.DialContext(ctx2, ns, "tcp", "10.77.0.9:80"); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial: %v, want canceled", err)
	}
	waitFDs(t, fds)
}

func TestErrors(t *testing.T) {
	name, ns := openNS(t)
	fds, _ := sockets()
	ln, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		do   func() error
		want error
		text string
	}{
		{func() error { _, err := nsnet.Dial(ns, "tcp", "example.com:80"); return err }, nsnet.ErrHostName, "dial tcp example.com:80 in " + name + ": host names"},
		{func() error { _, err := nsnet.Listen(ns, "tcp", ln.Addr().String()); return err }, unix.EADDRINUSE, "address already in use"},
		{func() error { _, err := nsnet.Listen(ns, "tcp", "10.9.9.9:0"); return err }, unix.EADDRNOTAVAIL, "not an address of this namespace"},
		{func() error { _, err := nsnet.Dial(ns, "tcp", "127.0.0.1:1"); return err }, unix.ECONNREFUSED, "connection refused"},
		{func() error { _, err := nsnet.Dial(ns, "tcp", "10.9.9.9:80"); return err }, unix.ENETUNREACH, "network is unreachable"},
		{func() error { _, err := nsnet.Listen(ns, "udp", ":0"); return err }, nsnet.ErrNetwork, "use ListenPacket"},
		{func() error { _, err := nsnet.ListenPacket(ns, "tcp", ":0"); return err }, nsnet.ErrNetwork, "use Listen"},
		{func() error { _, err := nsnet.Dial(ns, "udp6", "[fe80::1%nosuchdev]:53"); return err }, nsnet.ErrAddress, "no such interface"},
		{func() error { _, err := nsnet.Dial(nil, "tcp", "127.0.0.1:80"); return err }, nsnet.ErrNoNamespace, "no namespace"},
	} {
		err := tc.do()
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("got %v, want %v containing %q", err, tc.want, tc.text)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error spans lines: %q", err)
		}
	}
	closed, _ := nsjoin.Open(name)
	closed.Close()
	if _, err := nsnet.Dial(closed, "tcp", "127.0.0.1:80"); !errors.Is(err, nsjoin.ErrClosed) {
		t.Errorf("dial on closed handle: %v", err)
	}
	ln.Close()
	waitFDs(t, fds)
	nstest.CheckThreads(t)
}

func TestConcurrentDials(t *testing.T) {
	_, ns := openNS(t)
	ln, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := nsnet.Dial(ns, "tcp", ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.Write([]byte("x"))
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	nstest.CheckThreads(t)
}

func itoa(i int) string { return strconv.Itoa(i) }

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
)

// waitBlockedInFIFO waits until a thread of process pid sleeps in open(2)
// of a FIFO, waiting for the other end (wchan wait_for_partner).
func waitBlockedInFIFO(t *testing.T, p *proc) {
	t.Helper()
	pid := p.cmd.Process.Pid
	for i := 0; ; i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		for _, task := range tasks {
			if w, _ := os.ReadFile(task); string(w) == "wait_for_partner" {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%v exited %d before blocking on the FIFO: %s", p.cmd.Args, p.code, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if i == 3000 {
			t.Fatalf("%v never blocked opening the FIFO: %s", p.cmd.Args, p.stderr)
		}
	}
}

// waitCPU waits until process pid has used at least d of CPU time.
func waitCPU(t *testing.T, p *proc, d time.Duration) {
	t.Helper()
	for i := 0; ; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 13 {
			utime, _ := strconv.Atoi(f[11])
			stime, _ := strconv.Atoi(f[12])
			if time.Duration(utime+stime)*10*time.Millisecond >= d { // USER_HZ is 100
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%v exited %d: %s", p.cmd.Args[:3], p.code, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if i == 6000 {
			t.Fatalf("%v used no CPU: %s", p.cmd.Args[:3], p.stderr)
		}
	}
}

// interruptAndCheck sends sig and checks that the process exits with
// 128+sig and one line saying it was interrupted. The timeout only guards
// against a hang.
func interruptAndCheck(t *testing.T, p *proc, sig syscall.Signal) {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%v did not exit on %v: %s", p.cmd.Args[:3], sig, p.stderr)
	}
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	if p.code != 128+int(sig) || len(lines) != 1 || !strings.Contains(lines[0], "interrupted by "+strings.ToUpper("SIG"+sigName(sig))) {
		t.Fatalf("%v after %v: exit %d, stderr %q; want exit %d and one line saying it was interrupted", p.cmd.Args[:3], sig, p.code, p.stderr, 128+int(sig))
	}
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGINT {
		return "INT"
	}
	return "TERM"
}

// TestStartupInterruptible: SIGINT or SIGTERM ends netobs while it is
// blocked opening a FIFO (capture -w, attach -w, attach --inject) or
// compiling a filter of hundreds of terms, with the signal's status
// (128+N) and nothing left behind: no file, no device.
func TestStartupInterruptible(t *testing.T) {
	nstest.RequireTools(t, "mkfifo")
	ns := nstest.NetNS(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	nstest.Run(t, "mkfifo", fifo)
	links := nstest.Run(t, "ip", "-n", ns, "-o", "link")

	for _, c := range []struct {
		name string
		args []string
		sig  syscall.Signal
	}{
		{"capture -w FIFO", []string{"capture", ns, "-w", fifo}, syscall.SIGINT},
		{"capture -w FIFO, SIGTERM", []string{"capture", ns, "-w", fifo}, syscall.SIGTERM},
		{"attach -w FIFO", []string{"attach", ns, "--tap", "--name", "intr0", "-w", fifo}, syscall.SIGINT},
		{"attach --inject FIFO", []string{"attach", ns, "--tap", "--name", "intr0", "--inject", fifo, "-w", filepath.Join(dir, "out.pcap")}, syscall.SIGINT},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := launch(t, "", netobsBin, c.args...)
			waitBlockedInFIFO(t, p)
			interruptAndCheck(t, p, c.sig)
		})
	}

	// 600 terms: libpcap takes tens of seconds to compile and optimise.
	var terms []string
	for i := 1; i <= 600; i++ {
		terms = append(terms, fmt.Sprintf("port %d", i))
	}
	t.Run("capture with a huge filter", func(t *testing.T) {
		p := launch(t, "", netobsBin, append([]string{"capture", ns, "-w", filepath.Join(dir, "huge.pcapng"), "--"}, strings.Join(terms, " or "))...)
		waitCPU(t, p, 500*time.Millisecond)
		if strings.Contains(p.stderr.String(), "capturing on") {
			t.Fatalf("the filter compiled before the signal; the test needs a slower one: %s", p.stderr)
		}
		interruptAndCheck(t, p, syscall.SIGINT)
	})

	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("left in the directory: %v, want only the FIFO", names)
	}
	if after := nstest.Run(t, "ip", "-n", ns, "-o", "link"); after != links {
		t.Errorf("links in %s changed:\n%s\nnow:\n%s", ns, links, after)
	}
}

// TestCaptureDiskFull: when the disk fills, capture exits 1 naming the
// error, and the file ends on a whole packet: tshark reads it to the end,
// and it holds as many packets as netobs says it wrote.
func TestCaptureDiskFull(t *testing.T) {
	nsA, nsB, _, ifB := captureNets(t)
	nstest.RequireTools(t, "mount", "umount")
	dir := t.TempDir()
	nstest.Run(t, "mount", "-t", "tmpfs", "-o", "size=256k", nstest.UniqueName("full"), dir)
	t.Cleanup(func() { nstest.Output("umount", dir) })
	for _, format := range []string{"pcapng", "pcap"} {
		file := filepath.Join(dir, "x."+format)
		p := startCapture(t, "capture", nsB, "-i", ifB, "-w", file, "--format", format)
		// About 1.7 MB of pings, far more than fits.
		nstest.Output("ip", "netns", "exec", nsA, "ping", "-q", "-c", "600", "-i", "0.002", "-s", "1400", "10.93.0.2")
		select {
		case <-p.done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: capture did not stop on a full disk: %s", format, p.stderr)
		}
		m := regexp.MustCompile(`(?m)^(\d+) packets? written to ` + regexp.QuoteMeta(file) + `$`).FindStringSubmatch(p.stderr.String())
		if p.code != 1 || !strings.Contains(p.stderr.String(), "no space left on device") || m == nil {
			t.Fatalf("%s: exit %d, stderr %s; want exit 1, the error and how many packets the file holds", format, p.code, p.stderr)
		}
		said, _ := strconv.Atoi(m[1])
		out, err := nstest.Output("tshark", "-r", file, "-T", "fields", "-e", "frame.number")
		if err != nil {
			t.Fatalf("%s: tshark -r: %v: %s", format, err, out)
		}
		if n := len(strings.Fields(out)); n != said || n == 0 {
			t.Fatalf("%s: tshark reads %d packets, netobs says the file holds %d", format, n, said)
		}
		if pkts, _, err := nstest.ReadPcap(file); err != nil || len(pkts) != said {
			t.Fatalf("%s: %d packets read, %v; netobs says %d", format, len(pkts), err, said)
		}
		os.Remove(file)
	}
}

package test

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
)

// TestImage builds the agent image as `make image` does (a fully static
// netobs, FROM scratch) and checks that the binary has no dynamic
// dependency, runs in the image, and filters with its statically linked
// libpcap exactly as tcpdump does.
func TestImage(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "make", "podman", "runc", "tcpdump", "gcc")
	dir := t.TempDir()
	image := "localhost/" + strings.ToLower(nstest.UniqueName("img")) + ":test"
	mk := exec.Command("make", "-C", "..", "image", "IMAGE="+image, "STATIC_DIR="+dir)
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "netobs")

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("static netobs has a program interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("static netobs needs %v", libs)
	}
	f.Close()

	out, err := exec.Command("podman", "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024",
		"--ulimit", "nproc=1024:1024", image, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "netobs ") {
		t.Fatalf("podman run %s --version: %v: %q", image, err, out)
	}

	// The static libpcap compiles filters as the dynamic one does.
	nsA, nsB, _, ifB := captureNets(t)
	files := filepath.Join(t.TempDir(), "x")
	const filter = "udp port 5001 or icmp"
	td := launch(t, "listening on", "ip", "netns", "exec", nsB, "tcpdump", "-n", "-B", "1024", "-i", ifB, "-w", files+".pcap", filter)
	no := launch(t, "capturing on", bin, "capture", nsB, "-i", ifB, "-w", files+".pcapng", "--", filter)
	td.waitReady(t)
	no.waitReady(t)
	traffic(t, nsA, nsB, "10.93.0.2")
	time.Sleep(tcpdumpSettle)
	td.cmd.Process.Signal(syscall.SIGINT)
	no.cmd.Process.Signal(syscall.SIGINT)
	td.stop(t)
	if code := no.stop(t); code != 0 {
		t.Fatalf("static netobs exited %d: %s", code, no.stderr)
	}
	if n := samePackets(t, "static "+filter, files+".pcapng", files+".pcap"); n == 0 {
		t.Errorf("no packet matched %q in either capture; the traffic has some", filter)
	}
}

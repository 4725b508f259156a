// Package ctrtest gives tests real container runtimes: Docker and podman,
// containerd with its CRI plugin (see Containerd),
// their API sockets answering (dockerd or podman's API service started
// for the test binary when none answers, and stopped by PID at Shutdown),
// a local busybox image (no registry is reachable: the image is imported
// from a busybox-static rootfs) and containers with names unique to the
// run that are removed when the test ends, even on failure.
//
// Under CI=true a missing runtime fails the test, as nstest does.
package ctrtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
)

// Runtime is one container runtime's command line, ready to run
// containers.
type Runtime struct {
	// Name is the runtime's name in netobs references: docker or podman.
	Name string
	// Socket is the API socket netobs finds it at.
	Socket string
	bin    string
	// runArgs go before the image in `run`: podman needs runc here (crun
	// rejects this host's hybrid cgroups) and explicit ulimits.
	runArgs []string
	// rmArgs go into `rm -f`: podman would wait 10 s for sleep, which
	// ignores SIGTERM as PID 1.
	rmArgs []string
	image  string
}

var (
	mu       sync.Mutex
	started  []*exec.Cmd // daemons this process started
	imported []func()    // remove the images this process imported
	ready    = map[string]*Runtime{}
)

// Docker returns Docker, starting dockerd (vfs storage) if nothing answers
// on /var/run/docker.sock.
func Docker(tb testing.TB) *Runtime {
	tb.Helper()
	return get(tb, "docker", func() *Runtime {
		return &Runtime{Name: "docker", Socket: "/var/run/docker.sock", bin: "docker"}
	}, []string{"docker", "dockerd", "busybox"}, func(sock, log string) *exec.Cmd {
		return exec.Command("dockerd", "--storage-driver", "vfs", "--host", "unix://"+sock)
	})
}

// Podman returns podman, starting its API service on
// /run/podman/podman.sock if nothing answers there.
func Podman(tb testing.TB) *Runtime {
	tb.Helper()
	return get(tb, "podman", newPodman, []string{"podman", "runc", "busybox"}, func(sock, log string) *exec.Cmd {
		return exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	})
}

// PodmanCLI returns podman for a test of netobs without podman's API
// service: the service is not started for it (one started for another
// test may still run; WithoutAPI hides it from a command).
func PodmanCLI(tb testing.TB) *Runtime {
	tb.Helper()
	nstest.RequireTools(tb, "unshare", "mount")
	return get(tb, "podman-cli", newPodman, []string{"podman", "runc", "busybox"}, nil)
}

func newPodman() *Runtime {
	return &Runtime{Name: "podman", Socket: "/run/podman/podman.sock", bin: "podman",
		runArgs: []string{"--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"},
		rmArgs:  []string{"--time", "0"}}
}

// WithoutAPI makes cmd run with the runtime's API socket hidden: in a
// mount namespace of its own (unshare -m) where an empty tmpfs covers the
// socket's directory, and without the environment variables that name
// another socket. The runtime's state is untouched, so its own command
// line still works, while nothing answers on its socket for cmd and its
// children, whether or not a service runs for other tests.
func (r *Runtime) WithoutAPI(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	dir := filepath.Dir(r.Socket)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		tb.Fatal(err)
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = nil
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != "CONTAINER_HOST" && k != "XDG_RUNTIME_DIR" && k != "DOCKER_HOST" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Args = append([]string{unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=64k,mode=0755 netobs-test-hidden "$0" && exec "$@"`, dir, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = unshare
}

func get(tb testing.TB, name string, mk func() *Runtime, tools []string, daemon func(sock, log string) *exec.Cmd) *Runtime {
	tb.Helper()
	nstest.RequireRoot(tb)
	nstest.RequireTools(tb, tools...)
	mu.Lock()
	defer mu.Unlock()
	if r := ready[name]; r != nil {
		return r
	}
	if err := shareDaemons(); err != nil {
		tb.Fatal(err)
	}
	r := mk()
	if daemon != nil && !answers(r.Socket) {
		if err := os.MkdirAll(filepath.Dir(r.Socket), 0o755); err != nil {
			tb.Fatal(err)
		}
		cmd := daemon(r.Socket, "")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		// Its own process group, so a Ctrl-C of the test does not
		// reach it before Shutdown does.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start %s: %v", cmd.Path, err)
		}
		started = append(started, cmd)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		for !answers(r.Socket) {
			select {
			case err := <-exited:
				started = started[:len(started)-1]
				tb.Fatalf("%s exited (%v) before answering on %s: %s", strings.Join(cmd.Args, " "), err, r.Socket, lastLines(out.String()))
			case <-time.After(100 * time.Millisecond):
			}
		}
		waits[cmd] = exited
	}
	r.image = importImage(tb, r)
	ready[name] = r
	return r
}

var waits = map[*exec.Cmd]chan error{}

// answers reports whether something accepts connections on the socket.
func answers(sock string) bool {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// lockPath is the lock that keeps a test binary from stopping a daemon it
// started while another test binary (go test runs packages in parallel)
// still uses it: users hold it shared, Shutdown exclusive.
const lockPath = "/run/netobs-test-runtimes.lock"

var lock *os.File

// shareDaemons takes the lock shared, once per process, before the
// sockets are probed.
func shareDaemons() error {
	if lock != nil {
		return nil
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return os.NewSyscallError("flock", err)
	}
	lock = f
	return nil
}

// Shutdown removes the images this process imported and stops the daemons
// it started, by PID, waiting for them. TestMain calls it after m.Run.
func Shutdown() {
	mu.Lock()
	defer mu.Unlock()
	if criReady != nil {
		criReady.stop()
		criReady = nil
	}
	for _, rmi := range imported {
		rmi()
	}
	imported = nil
	if lock == nil {
		return
	}
	// Shared to exclusive is not atomic: release first, so two binaries
	// that each started a daemon do not wait for each other.
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if len(started) > 0 {
		syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
	}
	defer func() { lock.Close(); lock = nil }()
	for _, cmd := range started {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waits[cmd]:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-waits[cmd]
		}
	}
	started = nil
	ready = map[string]*Runtime{}
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// importImage builds a busybox image from /bin/busybox (busybox-static)
// once per test binary and runtime.
func importImage(tb testing.TB, r *Runtime) string {
	tb.Helper()
	image := "netobs-test-busybox:" + nstest.Prefix()
	if _, err := r.output("image", "inspect", image); err == nil {
		return image
	}
	imported = append(imported, func() { r.output("rmi", "-f", image) })
	dir := tb.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		tb.Fatal(err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "ping", "ip", "nc", "true"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			tb.Fatal(err)
		}
	}
	tar := exec.Command("tar", "-C", dir, "-c", "bin")
	imp := exec.Command(r.bin, "import", "-", image)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	imp.Stdin = pipe
	var out bytes.Buffer
	imp.Stdout, imp.Stderr = &out, &out
	if err := tar.Start(); err != nil {
		tb.Fatal(err)
	}
	if err := imp.Run(); err != nil {
		tar.Wait()
		tb.Fatalf("%s import: %v: %s", r.bin, err, out.String())
	}
	if err := tar.Wait(); err != nil {
		tb.Fatal(err)
	}
	return image
}

func (r *Runtime) output(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(r.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", r.bin, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Cmd runs the runtime's command line and returns its output; it fails
// the test on error.
func (r *Runtime) Cmd(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := r.output(args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Run starts a container with a name unique to the run (returned) from
// the busybox image, with extra `run` options before the image and the
// command after it (default: sleep). It is removed when the test ends.
func (r *Runtime) Run(tb testing.TB, opts []string, command ...string) string {
	tb.Helper()
	return r.make(tb, "run", append([]string{"-d"}, opts...), command)
}

// Create makes a container that is never started.
func (r *Runtime) Create(tb testing.TB, opts []string, command ...string) string {
	tb.Helper()
	return r.make(tb, "create", opts, command)
}

func (r *Runtime) make(tb testing.TB, verb string, opts, command []string) string {
	tb.Helper()
	name := nstest.UniqueName("ctr")
	if len(command) == 0 {
		command = []string{"/bin/sleep", "3600"}
	}
	args := append([]string{verb, "--name", name}, r.runArgs...)
	args = append(append(args, opts...), r.image)
	tb.Cleanup(func() { r.output(append(append([]string{"rm", "-f"}, r.rmArgs...), name)...) })
	r.Cmd(tb, append(args, command...)...)
	return name
}

// Inspect returns a Go-template field of a container (docker inspect -f).
func (r *Runtime) Inspect(tb testing.TB, name, format string) string {
	tb.Helper()
	return r.Cmd(tb, "inspect", "-f", format, name)
}

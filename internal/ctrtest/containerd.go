package ctrtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PlainNamespace is the containerd namespace of the containers RunPlain
// makes: nerdctl's and ctr's default.
const PlainNamespace = "default"

// NewID returns a random 64-hex-digit container ID, the form nerdctl and
// Docker give their containers.
func NewID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ctr runs ctr against this containerd in namespace ns.
func (c *CRI) ctr(ns string, args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"-a", c.Socket, "-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr -n %s %s: %v: %s", ns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// plainImage imports the busybox image into PlainNamespace once (images
// are per namespace; importImage put it in k8s.io for the CRI).
func (c *CRI) plainImage(tb testing.TB) {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if c.plainReady {
		return
	}
	if _, err := c.ctr(PlainNamespace, "images", "import", "--snapshotter", "native", c.dir+"/image.tar"); err != nil {
		tb.Fatal(err)
	}
	c.plainReady = true
}

// RunPlain runs a plain containerd container as nerdctl or `ctr run -d`
// makes one: in containerd namespace "default", outside any pod, with a
// network namespace of its own that holds only a loopback device (no CNI),
// running command (default: sleep). A name other than "" is put in
// nerdctl's label nerdctl/name. The container and its task are removed
// when the test ends, even on failure.
func (c *CRI) RunPlain(tb testing.TB, id, name string, command ...string) {
	tb.Helper()
	c.runPlain(tb, "run", id, name, nil, command)
}

// RunPlainLabelled is RunPlain with these labels on the container too
// (`nerdctl run --label`), for selectors.
func (c *CRI) RunPlainLabelled(tb testing.TB, id, name string, labels map[string]string, command ...string) {
	tb.Helper()
	c.runPlain(tb, "run", id, name, labels, command)
}

// RunPlainHostNet is RunPlain with the host's network namespace (`ctr run
// --net-host`, `nerdctl run --network host`): its spec has no network
// namespace.
func (c *CRI) RunPlainHostNet(tb testing.TB, id string) {
	tb.Helper()
	c.runPlain(tb, "run --net-host", id, "", nil, nil)
}

func (c *CRI) runPlain(tb testing.TB, verb, id, name string, labels map[string]string, command []string) {
	tb.Helper()
	c.makePlain(tb, verb, id, name, labels, command)
	c.waitRunning(tb, id)
}

func (c *CRI) waitRunning(tb testing.TB, id string) {
	tb.Helper()
	for i := 0; c.TaskStatus(tb, id) != "RUNNING"; i++ {
		if i == 500 {
			tb.Fatalf("containerd task %s never ran: %s", id, c.TaskStatus(tb, id))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CreatePlain creates a plain containerd container as RunPlain does, but
// with no task: created, never started (`ctr containers create`,
// `nerdctl create`).
func (c *CRI) CreatePlain(tb testing.TB, id, name string) {
	tb.Helper()
	c.makePlain(tb, "containers create", id, name, nil, nil)
}

func (c *CRI) makePlain(tb testing.TB, verb, id, name string, labels map[string]string, command []string) {
	tb.Helper()
	c.plainImage(tb)
	if len(command) == 0 {
		command = []string{"/bin/sleep", "3600"}
	}
	args := strings.Fields(verb)
	if args[0] == "run" {
		args = append(args, "-d")
	}
	args = append(args, "--snapshotter", "native")
	if name != "" {
		args = append(args, "--label", "nerdctl/name="+name)
	}
	for k, v := range labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(append(args, c.Image, id), command...)
	tb.Cleanup(func() { c.removePlain(id) })
	if _, err := c.ctr(PlainNamespace, args...); err != nil {
		tb.Fatal(err)
	}
}

// TaskStatus is the status of the container's task as `ctr tasks ls` says
// it (RUNNING, STOPPED...), "" if it has none.
func (c *CRI) TaskStatus(tb testing.TB, id string) string {
	tb.Helper()
	_, status := c.task(tb, id)
	return status
}

// PlainPID is the PID of the plain container's running task.
func (c *CRI) PlainPID(tb testing.TB, id string) int {
	tb.Helper()
	pid, status := c.task(tb, id)
	if status != "RUNNING" || pid <= 0 {
		tb.Fatalf("containerd container %s: task %q, pid %d; want a running task", id, status, pid)
	}
	return pid
}

func (c *CRI) task(tb testing.TB, id string) (int, string) {
	tb.Helper()
	out, err := c.ctr(PlainNamespace, "tasks", "ls")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			pid, _ := strconv.Atoi(f[1])
			return pid, f[2]
		}
	}
	return 0, ""
}

// KillPlain kills the container's task and waits until it has stopped;
// the task stays, STOPPED, as after `nerdctl stop`.
func (c *CRI) KillPlain(tb testing.TB, id string) {
	tb.Helper()
	if _, err := c.ctr(PlainNamespace, "tasks", "kill", "-s", "SIGKILL", id); err != nil {
		tb.Fatal(err)
	}
	for i := 0; c.TaskStatus(tb, id) != "STOPPED"; i++ {
		if i == 1000 {
			tb.Fatalf("containerd task %s not stopped: %s", id, c.TaskStatus(tb, id))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RestartPlain kills the container's task and starts a new one, as
// `nerdctl restart` does: the new task's process has a new network
// namespace (the spec names none to join). It returns the new PID.
func (c *CRI) RestartPlain(tb testing.TB, id string) int {
	tb.Helper()
	c.KillPlain(tb, id)
	if _, err := c.ctr(PlainNamespace, "tasks", "delete", id); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.ctr(PlainNamespace, "tasks", "start", "--null-io", "-d", id); err != nil {
		tb.Fatal(err)
	}
	c.waitRunning(tb, id)
	return c.PlainPID(tb, id)
}

// removePlain deletes the container's task (killing it) and the container
// with its snapshot; errors mean it is gone already.
func (c *CRI) removePlain(id string) {
	c.ctr(PlainNamespace, "tasks", "delete", "--force", id)
	c.ctr(PlainNamespace, "containers", "delete", id)
}

// removeAllPlain removes every container of PlainNamespace, for stop.
func (c *CRI) removeAllPlain() {
	out, err := c.ctr(PlainNamespace, "containers", "ls", "-q")
	if err != nil {
		return
	}
	for _, id := range strings.Fields(out) {
		c.removePlain(id)
	}
}

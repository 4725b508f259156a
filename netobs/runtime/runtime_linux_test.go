package runtime_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	ctrtest.Shutdown()
	os.Exit(code)
}

// nsInode is what `nsenter --net=PATH readlink /proc/self/ns/net` says:
// the namespace a path names, seen by a tool other than netobs.
func nsenterInode(t *testing.T, flag string) string {
	t.Helper()
	out, err := exec.Command("nsenter", flag, "readlink", "/proc/self/ns/net").Output()
	if err != nil {
		t.Fatalf("nsenter %s: %v", flag, err)
	}
	return strings.TrimSpace(string(out))
}

// Each runtime resolves a container by name and by ID prefix to the
// namespace its runtime and nsenter agree on, through the pinned netns
// path.
func TestLookupOpenByNameAndPrefix(t *testing.T) {
	for _, rt := range []func(testing.TB) *ctrtest.Runtime{ctrtest.Docker, ctrtest.Podman} {
		r := rt(t)
		t.Run(r.Name, func(t *testing.T) {
			name := r.Run(t, nil)
			id := r.Inspect(t, name, "{{.Id}}")
			sandbox := r.Inspect(t, name, "{{.NetworkSettings.SandboxKey}}")
			pid := r.Inspect(t, name, "{{.State.Pid}}")
			want := nsenterInode(t, "--net="+sandbox)
			if byPID := nsenterInode(t, "--net=/proc/"+pid+"/ns/net"); byPID != want {
				t.Fatalf("%s: sandbox %s is %s, process %s is in %s", r.Name, sandbox, want, pid, byPID)
			}
			for _, ref := range []string{r.Name + ":" + name, r.Name + ":" + id[:10], "container:" + id[:12], "container:" + name} {
				ns, c, err := runtime.Open(context.Background(), ref, runtime.Options{})
				if err != nil {
					t.Fatalf("Open %s: %v", ref, err)
				}
				got := ns.String()
				path, nspid := ns.Path(), ns.PID()
				ns.Close()
				if got != want || c.ID != id || c.Name != name || c.Runtime != r.Name || c.State != "running" || strconv.Itoa(c.PID) != pid || c.Netns != sandbox {
					t.Fatalf("Open %s = %s %+v; want %s, ID %s, name %s, PID %s, netns %s", ref, got, c, want, id, name, pid, sandbox)
				}
				if path != sandbox || nspid != 0 {
					t.Fatalf("Open %s opened %s (pid %d), want the pinned path %s", ref, path, nspid, sandbox)
				}
			}
		})
	}
}

// Without a pinned path the PID is the way in, held by a pidfd.
func TestOpenNSFallsBackToPID(t *testing.T) {
	r := ctrtest.Docker(t)
	name := r.Run(t, nil)
	c, err := runtime.Lookup(context.Background(), runtime.Ref{Runtime: "docker", Key: name}, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := nsenterInode(t, "--net="+c.Netns)
	c.Netns = filepath.Join(t.TempDir(), "gone")
	ns, err := runtime.OpenNS(c, nsjoin.Net)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if ns.String() != want || ns.PID() != c.PID {
		t.Fatalf("fallback opened %s (pid %d), want %s through pid %d", ns, ns.PID(), want, c.PID)
	}
}

// An ID prefix shared by two containers is an error that lists both; so
// is a name two runtimes both have, asked for as container:NAME.
func TestAmbiguous(t *testing.T) {
	d, p := ctrtest.Docker(t), ctrtest.Podman(t)
	ids := map[string]string{} // first hex digit -> ID
	var prefix string
	// 17 containers always give two with the same first digit; about five
	// are needed on average.
	for i := 0; i < 17 && prefix == ""; i++ {
		id := d.Inspect(t, d.Create(t, nil), "{{.Id}}")
		if other, ok := ids[id[:1]]; ok {
			prefix = id[:1]
			ids["a"], ids["b"] = other, id
		}
		ids[id[:1]] = id
	}
	_, err := runtime.Lookup(context.Background(), runtime.Ref{Runtime: "docker", Key: prefix}, runtime.Options{})
	var amb *runtime.AmbiguousError
	if !errors.As(err, &amb) || !errors.Is(err, runtime.ErrAmbiguous) {
		t.Fatalf("docker:%s: %v, want an ambiguity", prefix, err)
	}
	for _, id := range []string{ids["a"], ids["b"]} {
		if !strings.Contains(err.Error(), id[:12]) {
			t.Fatalf("error %q does not list %s", err, id[:12])
		}
	}

	name := nstest.UniqueName("dup")
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run(); exec.Command("podman", "rm", "-f", name).Run() })
	d.Cmd(t, "create", "--name", name, d.Inspect(t, ids["a"], "{{.Config.Image}}"), "/bin/sleep", "1")
	p.Cmd(t, "create", "--name", name, p.Inspect(t, p.Create(t, nil), "{{.ImageName}}"), "/bin/sleep", "1")
	_, err = runtime.Lookup(context.Background(), runtime.Ref{Key: name}, runtime.Options{})
	if !errors.As(err, &amb) || len(amb.Matches) != 2 || amb.Matches[0].Runtime == amb.Matches[1].Runtime {
		t.Fatalf("container:%s: %v, want both runtimes' containers listed", name, err)
	}
	// Naming the runtime settles it.
	if c, err := runtime.Lookup(context.Background(), runtime.Ref{Runtime: "podman", Key: name}, runtime.Options{}); err != nil || c.Runtime != "podman" {
		t.Fatalf("podman:%s: %+v, %v", name, c, err)
	}
}

// A container that is not running has no namespace: ErrNotRunning, with
// its state in the message.
func TestStoppedContainer(t *testing.T) {
	r := ctrtest.Docker(t)
	created := r.Create(t, nil)
	exited := r.Run(t, nil, "/bin/true")
	r.Cmd(t, "wait", exited)
	for name, state := range map[string]string{created: "created", exited: "exited"} {
		_, _, err := runtime.Open(context.Background(), "docker:"+name, runtime.Options{})
		if !errors.Is(err, runtime.ErrNotRunning) || !strings.Contains(err.Error(), state) || !strings.Contains(err.Error(), name) {
			t.Fatalf("docker:%s: %v, want not running (%s)", name, err, state)
		}
	}
	if _, _, err := runtime.Open(context.Background(), "docker:"+nstest.UniqueName("none"), runtime.Options{}); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("unknown container: %v, want ErrNotFound", err)
	}
}

// A runtime that is not running: the sockets tried and why, for a missing
// socket and for one nobody listens on.
func TestDaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	dead := filepath.Join(dir, "dead.sock")
	l, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	for sock, why := range map[string]string{missing: "no such socket", dead: "connection refused"} {
		for _, o := range []runtime.Options{{Endpoint: sock}, {Endpoint: "unix://" + sock}} {
			_, err := runtime.Lookup(context.Background(), runtime.Ref{Runtime: "docker", Key: "web"}, o)
			var ue *runtime.UnreachableError
			if !errors.Is(err, runtime.ErrNoRuntime) || !errors.As(err, &ue) || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), why) {
				t.Fatalf("endpoint %s: %v, want unreachable naming %s (%s)", o.Endpoint, err, sock, why)
			}
		}
	}
	t.Setenv(runtime.EnvEndpoint, dead)
	if _, err := runtime.List(context.Background(), "", runtime.Options{}); !errors.Is(err, runtime.ErrNoRuntime) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("$%s=%s: %v, want unreachable", runtime.EnvEndpoint, dead, err)
	}
}

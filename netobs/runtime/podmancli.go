package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// podmanCLI is podman reached through its own command line, which reads
// podman's state directly: it works where no podman API service runs
// (podman has no daemon; its API socket is often not enabled). Every
// call runs the podman binary once, bounded by apiTimeout.
type podmanCLI struct {
	bin string
}

var _ Runtime = (*podmanCLI)(nil)

// maxCLIOutput bounds what is read from one podman command.
const maxCLIOutput = 64 << 20

// ErrBadPodmanOutput: podman's command line printed something that is not
// the JSON it documents.
var ErrBadPodmanOutput = errors.New("unexpected podman output")

// lookPodman finds the podman command. It is only used for the host
// netobs runs on (under a host root the host's podman binary, libraries
// and state are not this system's), and only where podman keeps state for
// this user, so that asking it has nothing to create: root's
// /var/lib/containers/storage, a rootless user's
// $XDG_DATA_HOME/containers/storage (~/.local/share by default).
func lookPodman(o Options) (string, error) {
	if o.HostRoot != "" && o.HostRoot != "/" {
		return "", errors.New("not used under a host root")
	}
	if _, err := os.Stat(podmanStorage()); err != nil {
		return "", fmt.Errorf("no podman state: %w", err)
	}
	return exec.LookPath("podman")
}

// podmanStorage is podman's default storage directory for this user.
func podmanStorage() string {
	if os.Geteuid() == 0 {
		return "/var/lib/containers/storage"
	}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		home, _ := os.UserHomeDir()
		data = filepath.Join(home, ".local/share")
	}
	return filepath.Join(data, "containers/storage")
}

// wantPodmanCLI reports whether Connect falls back to podman's command
// line: podman is asked for (by name or as any runtime), no podman API
// socket answered, and no endpoint was given.
func wantPodmanCLI(runtime string, o Options, rts []Runtime) bool {
	if (runtime != "podman" && runtime != "") || o.endpoint() != "" {
		return false
	}
	for _, rt := range rts {
		if rt.Name() == "podman" {
			return false
		}
	}
	return true
}

func (p *podmanCLI) Name() string     { return "podman" }
func (p *podmanCLI) Endpoint() string { return p.bin }
func (p *podmanCLI) Close() error     { return nil }

// run runs podman with args and returns its standard output.
func (p *podmanCLI) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	var out, errb limitedBuffer
	out.max, errb.max = maxCLIOutput, 4096
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", p.bin, args[0], ctx.Err())
		}
		msg, _, _ := strings.Cut(strings.TrimSpace(errb.String()), "\n")
		return nil, &podmanError{Args: args, Err: err, Stderr: msg}
	}
	if out.over {
		return nil, fmt.Errorf("%s %s: %w: more than %d bytes", p.bin, args[0], ErrBadPodmanOutput, maxCLIOutput)
	}
	return out.Bytes(), nil
}

// podmanError is a podman command that failed: its exit status and the
// first line it printed on stderr.
type podmanError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *podmanError) Error() string {
	return fmt.Sprintf("podman %s: %v: %q", strings.Join(e.Args, " "), e.Err, e.Stderr)
}

func (e *podmanError) Unwrap() error { return e.Err }

type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func (p *podmanCLI) List(ctx context.Context) ([]Container, error) {
	out, err := p.run(ctx, "ps", "--all", "--no-trunc", "--format", "json")
	if err != nil {
		return nil, fmt.Errorf("list podman containers: %w", err)
	}
	cs, err := parsePodmanPS(out)
	if err != nil {
		return nil, fmt.Errorf("list podman containers: %w", err)
	}
	for i := range cs {
		cs[i].Endpoint = p.bin
	}
	return cs, nil
}

func (p *podmanCLI) Inspect(ctx context.Context, id string) (Container, error) {
	cs, err := p.inspectAll(ctx, []string{id})
	if err != nil {
		return Container{}, err
	}
	return cs[0], nil
}

// inspectAll inspects many containers with one podman command, so that a
// listing of every container costs two commands, not one per container.
// A container removed since it was listed fails with ErrNotFound.
func (p *podmanCLI) inspectAll(ctx context.Context, ids []string) ([]Container, error) {
	what := "container " + shortID(ids[0])
	if len(ids) > 1 {
		what = fmt.Sprintf("%d containers", len(ids))
	}
	out, err := p.run(ctx, append([]string{"container", "inspect", "--"}, ids...)...)
	if err != nil {
		// podman says which are gone by the exit status of `container
		// exists` (1: no such container), not by a message to match.
		for _, id := range ids {
			var ee *exec.ExitError
			_, xerr := p.run(ctx, "container", "exists", "--", id)
			var pe *podmanError
			if errors.As(xerr, &pe) && errors.As(pe.Err, &ee) && ee.ExitCode() == 1 {
				return nil, fmt.Errorf("inspect podman container %s: %w", shortID(id), ErrNotFound)
			}
		}
		return nil, fmt.Errorf("inspect podman %s: %w", what, err)
	}
	cs, err := parsePodmanInspect(out)
	if err == nil && len(cs) != len(ids) {
		err = fmt.Errorf("%w: %d records for %d containers", ErrBadPodmanOutput, len(cs), len(ids))
	}
	if err != nil {
		return nil, fmt.Errorf("inspect podman %s: %w", what, err)
	}
	for i := range cs {
		cs[i].Endpoint = p.bin
	}
	return cs, nil
}

// podmanPS is one entry of `podman ps --all --format json`.
type podmanPS struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// podmanInspect is one entry of `podman container inspect`, which has the
// layout of Docker's inspect.
type podmanInspect struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	State struct {
		Status  string `json:"Status"`
		Running bool   `json:"Running"`
		Pid     int    `json:"Pid"`
	} `json:"State"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	HostConfig struct {
		NetworkMode string `json:"NetworkMode"`
	} `json:"HostConfig"`
	NetworkSettings struct {
		SandboxKey string `json:"SandboxKey"`
		Networks   map[string]struct {
			IPAddress           string `json:"IPAddress"`
			IPPrefixLen         int    `json:"IPPrefixLen"`
			GlobalIPv6Address   string `json:"GlobalIPv6Address"`
			GlobalIPv6PrefixLen int    `json:"GlobalIPv6PrefixLen"`
		} `json:"Networks"`
	} `json:"NetworkSettings"`
}

// parsePodmanPS parses `podman ps --all --format json`. Entries are
// summaries (not Detailed). An entry without an ID is an error.
func parsePodmanPS(data []byte) ([]Container, error) {
	var ps []podmanPS
	if err := json.Unmarshal(data, &ps); err != nil {
		return nil, fmt.Errorf("%w: ps: %v", ErrBadPodmanOutput, err)
	}
	cs := make([]Container, 0, len(ps))
	for _, s := range ps {
		if err := checkID(s.ID); err != nil {
			return nil, err
		}
		c := Container{Runtime: "podman", ID: s.ID, State: s.State, Running: s.State == "running" || s.State == "paused", Labels: s.Labels}
		if len(s.Names) > 0 {
			c.Name = s.Names[0]
		}
		c.Pod, c.PodNamespace = podLabels(s.Labels)
		cs = append(cs, c)
	}
	return cs, nil
}

// parsePodmanInspect parses `podman container inspect`: a JSON array of
// Detailed records. The netns path must be absolute and the PID of a
// running container positive; a stopped container has neither.
func parsePodmanInspect(data []byte) ([]Container, error) {
	var rs []podmanInspect
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, fmt.Errorf("%w: inspect: %v", ErrBadPodmanOutput, err)
	}
	cs := make([]Container, 0, len(rs))
	for _, r := range rs {
		if err := checkID(r.ID); err != nil {
			return nil, err
		}
		c := Container{Runtime: "podman", ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Detailed: true,
			State: r.State.Status, Running: r.State.Running, NetworkMode: r.HostConfig.NetworkMode, Labels: r.Config.Labels}
		c.Pod, c.PodNamespace = podLabels(r.Config.Labels)
		if c.Running {
			if r.State.Pid <= 0 {
				return nil, fmt.Errorf("%w: running container %s has PID %d", ErrBadPodmanOutput, shortID(r.ID), r.State.Pid)
			}
			c.PID = r.State.Pid
			if k := r.NetworkSettings.SandboxKey; k != "" {
				if !filepath.IsAbs(k) {
					return nil, fmt.Errorf("%w: netns path %q of %s is not absolute", ErrBadPodmanOutput, k, shortID(r.ID))
				}
				c.Netns = filepath.Clean(k)
			}
		}
		for _, n := range r.NetworkSettings.Networks {
			for _, a := range []struct {
				addr string
				bits int
			}{{n.IPAddress, n.IPPrefixLen}, {n.GlobalIPv6Address, n.GlobalIPv6PrefixLen}} {
				ip, err := netip.ParseAddr(a.addr)
				if err != nil {
					continue // none on this network
				}
				if _, err := ip.Prefix(a.bits); err == nil { // bits in range
					c.Addresses = append(c.Addresses, netip.PrefixFrom(ip.WithZone(""), a.bits))
				}
			}
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// checkID accepts a container ID as the runtime reports it: what a
// reference can name (ParseRef's alphabet), so that it can be used as an
// argument to podman and as a key.
func checkID(id string) error {
	if _, err := ParseRef("podman:" + id); err != nil || strings.HasPrefix(id, "-") || strings.HasPrefix(id, "/") {
		return fmt.Errorf("%w: container ID %q", ErrBadPodmanOutput, id)
	}
	return nil
}

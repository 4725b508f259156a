package runtime

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// apiTimeout bounds each request, so a hung daemon cannot hang netobs.
const apiTimeout = 30 * time.Second

// dockerAPI is a runtime reached through the Docker Engine API: Docker
// itself, or podman's compatible service.
type dockerAPI struct {
	name, addr string
	hostRoot   string
	c          *client.Client
}

var _ Runtime = (*dockerAPI)(nil)

// dialDockerAPI connects to ep and checks that a daemon answers there. If
// ep.Runtime is empty, the daemon's version says which runtime it is.
func dialDockerAPI(ctx context.Context, ep Endpoint, hostRoot string) (*dockerAPI, error) {
	c, err := client.New(client.WithHost(ep.Address), client.WithTimeout(apiTimeout))
	if err != nil {
		return nil, err
	}
	d := &dockerAPI{name: ep.Runtime, addr: ep.Address, hostRoot: hostRoot, c: c}
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, err
	}
	if d.name == "" {
		v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
		if err != nil {
			c.Close()
			return nil, err
		}
		d.name = "docker"
		for _, comp := range v.Components {
			if strings.HasPrefix(comp.Name, "Podman") {
				d.name = "podman"
			}
		}
	}
	return d, nil
}

func (d *dockerAPI) Name() string     { return d.name }
func (d *dockerAPI) Endpoint() string { return d.addr }
func (d *dockerAPI) Close() error     { return d.c.Close() }

func (d *dockerAPI) List(ctx context.Context) ([]Container, error) {
	res, err := d.c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list %s containers: %w", d.name, err)
	}
	cs := make([]Container, 0, len(res.Items))
	for _, s := range res.Items {
		c := Container{
			Runtime: d.name, Endpoint: d.addr, ID: s.ID, hostRoot: d.hostRoot,
			State: string(s.State), Running: s.State == container.StateRunning || s.State == container.StatePaused,
			NetworkMode: s.HostConfig.NetworkMode,
		}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		c.Pod, c.PodNamespace = podLabels(s.Labels)
		c.Labels = s.Labels
		if s.NetworkSettings != nil {
			c.Addresses = addresses(s.NetworkSettings.Networks)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func (d *dockerAPI) Inspect(ctx context.Context, id string) (Container, error) {
	res, err := d.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return Container{}, fmt.Errorf("inspect %s container %s: %w", d.name, shortID(id), ErrNotFound)
		}
		return Container{}, fmt.Errorf("inspect %s container %s: %w", d.name, shortID(id), err)
	}
	r := res.Container
	c := Container{Runtime: d.name, Endpoint: d.addr, ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Detailed: true, hostRoot: d.hostRoot}
	if r.State != nil {
		c.State = string(r.State.Status)
		c.Running = r.State.Running
		if c.Running {
			c.PID = r.State.Pid
		}
	}
	if r.HostConfig != nil {
		c.NetworkMode = string(r.HostConfig.NetworkMode)
	}
	if r.Config != nil {
		c.Pod, c.PodNamespace = podLabels(r.Config.Labels)
		c.Labels = r.Config.Labels
	}
	if ns := r.NetworkSettings; ns != nil {
		if c.Running {
			c.Netns = HostPath(d.hostRoot, ns.SandboxKey)
		}
		c.Addresses = addresses(ns.Networks)
	}
	return c, nil
}

// podLabels reads the pod a container belongs to from the labels the
// kubelet puts on its containers.
func podLabels(l map[string]string) (pod, ns string) {
	return l["io.kubernetes.pod.name"], l["io.kubernetes.pod.namespace"]
}

func addresses(nets map[string]*network.EndpointSettings) []netip.Prefix {
	var ps []netip.Prefix
	for _, n := range nets {
		if n == nil {
			continue
		}
		if n.IPAddress.IsValid() {
			ps = append(ps, netip.PrefixFrom(n.IPAddress, n.IPPrefixLen))
		}
		if n.GlobalIPv6Address.IsValid() {
			ps = append(ps, netip.PrefixFrom(n.GlobalIPv6Address, n.GlobalIPv6PrefixLen))
		}
	}
	return ps
}

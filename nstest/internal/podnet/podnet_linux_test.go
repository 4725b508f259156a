package podnet_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nstest"
	"github.com/netobs/netobs/nstest/internal/podnet"
)

func TestAdd(t *testing.T) {
	t.Parallel()
	host, pod := nstest.NewNetNS(t), nstest.NewNetNS(t)
	podChanges := nstest.Events(t, pod)

	// Run the plugin as the runtime would: in the host namespace, given the
	// pod's namespace as a path.
	hostIf := nstest.UniqueName("vh")
	addr := netip.MustParsePrefix("10.22.0.2/24")
	if err := host.Do(func() error { return podnet.Add(pod.Path(), hostIf, addr) }); err != nil {
		t.Fatal(err)
	}

	// The kernel reports eth0 with its address in the pod.
	podChanges.WaitFor(t, "10.22.0.2/24 on eth0", func(ev events.Event) bool {
		return ev.Kind == "addr" && ev.Action == events.Added && ev.Dev == "eth0" &&
			strings.Contains(ev.Text, "10.22.0.2/24")
	})

	// The health check answers from the pod, over the veth.
	nstest.AddAddr(t, nstest.Link{NS: host, Name: hostIf}, "10.22.0.1/24")
	ln, err := podnet.ServeHealth(pod.Path(), addr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	packets := nstest.Capture(t, pod, "eth0", "tcp port 8080")
	c := nstest.Dial(t, host, "tcp", "10.22.0.2:8080")
	fmt.Fprint(c, "GET /healthz HTTP/1.0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok from 10.22.0.2\n" {
		t.Fatalf("health check: %s %q", resp.Status, body)
	}
	packets.WaitFor(t, "the host's SYN on eth0", func(p nstest.Packet) bool {
		return p.Src == "10.22.0.1" && strings.Contains(p.Summary, "Flags [S]")
	})
}

package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
	pubtest "github.com/netobs/netobs/nstest"
)

func init() { runtime.LockOSThread() }

// serve starts a server on a free loopback port for the test.
func serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Addr: ln.Addr().String(), Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: s.Handler(), BaseContext: func(net.Listener) context.Context { return ctx }}
	go srv.Serve(ln)
	t.Cleanup(func() { cancel(); srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// ifaceID returns topo's ID of interface dev in the named namespace.
func ifaceID(t *testing.T, ns, dev string) string {
	t.Helper()
	h, err := nsjoin.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var ls []struct {
		Index int `json:"ifindex"`
	}
	json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", ns, "-j", "link", "show", "dev", dev)), &ls)
	if len(ls) != 1 {
		t.Fatalf("ip -n %s link show %s: %d links", ns, dev, len(ls))
	}
	return fmt.Sprintf("net:[%d]/%d", h.ID().Inode, ls[0].Index)
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// vethDrawn is a page expression: is there a veth edge between a and b?
func vethDrawn(a, b string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('path.edge.veth')].some(e => (e.dataset.from == %[1]s && e.dataset.to == %[2]s) || (e.dataset.from == %[2]s && e.dataset.to == %[1]s))`, js(a), js(b))
}

// TestPage opens the page in headless Chromium: the test's namespaces and
// their veth pair are drawn; a new pair appears and its state changes
// without a reload; an interface named like markup shows as text and runs
// nothing. A screenshot is saved as an artifact.
func TestPage(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tshark", "chromium")
	a, b := nstest.NetNS(t), nstest.NetNS(t)
	va, vb := nstest.Veth(t, a, "10.79.0.1/24", b, "10.79.0.2/24")
	hostile := "<img>"
	nstest.Run(t, "ip", "-n", a, "link", "add", hostile, "type", "veth", "peer", "name", "<i>x")
	url := serve(t)

	chrome, _ := exec.LookPath("chromium")
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))...)
	defer acancel()
	// No timeout on the context that starts the browser: it would stop
	// the browser; each wait below has its own.
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	var dialogs atomic.Int32
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	wait := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(pageWait))); err != nil {
			t.Fatalf("page: %s: %v", what, err)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	wait("the veth pair drawn", vethDrawn(ifaceID(t, a, va), ifaceID(t, b, vb)))
	wait("the event stream live", `document.getElementById('status').textContent == 'live'`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.netobsMark = 42`)); err != nil {
		t.Fatal(err)
	}

	// A new pair, then its end going down, without a reload.
	nc, nd := nstest.UniqueName("vc"), nstest.UniqueName("vd")
	nstest.Run(t, "ip", "-n", a, "link", "add", nc, "type", "veth", "peer", "name", nd, "netns", b)
	nstest.Run(t, "ip", "-n", a, "link", "set", nc, "up")
	idc, idd := ifaceID(t, a, nc), ifaceID(t, b, nd)
	wait("the new pair drawn", vethDrawn(idc, idd))
	nstest.Run(t, "ip", "-n", b, "link", "set", nd, "up")
	wait("the new end up", fmt.Sprintf(`document.querySelector('g.iface[data-id=%s]')?.dataset.up == 'true'`, js(idd)))
	nstest.Run(t, "ip", "-n", b, "link", "set", nd, "down")
	wait("the new end down", fmt.Sprintf(`(g => g && g.dataset.up == 'false' && g.classList.contains('down'))(document.querySelector('g.iface[data-id=%s]'))`, js(idd)))
	if mark, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.netobsMark || 0`)); err != nil || mark != 42 {
		t.Errorf("the page was reloaded (mark %d, %v)", mark, err)
	}

	// The hostile names: text, no elements, no dialogs.
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`[...document.querySelectorAll('g.iface text')].some(e => e.textContent.startsWith(%s))`, js(hostile+"  veth"))))
	if err != nil {
		t.Fatal(err)
	}
	elems, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('img, i').length`))
	if err != nil {
		t.Fatal(err)
	}
	if !shown || elems != 0 || dialogs.Load() != 0 {
		t.Errorf("interface %q: shown as text %v, %d img/i elements, %d dialogs", hostile, shown, elems, dialogs.Load())
	}

	// A listener in a: clicking a's box lists it in the sockets panel.
	ha, err := nsjoin.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	ln := pubtest.Listen(t, ha, "tcp4", "10.79.0.1:0")
	nsA := fmt.Sprintf("net:[%d]", ha.ID().Inode)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector('g.ns[data-id=%s] > rect').dispatchEvent(new MouseEvent('click', {bubbles: true}))`, js(nsA)))); err != nil {
		t.Fatal(err)
	}
	wait("the listener in the sockets panel", fmt.Sprintf(`document.getElementById('sockets').dataset.ns == %s && [...document.querySelectorAll('#sockets tr')].some(r => r.dataset.local == %s && r.dataset.state == 'LISTEN')`, js(nsA), js(ln.Addr().String())))

	// Counters shown; the capture button of va, pings, the stop button:
	// the page saves a pcapng file tshark reads the pings from.
	ga := fmt.Sprintf(`document.querySelector('g.iface[data-id=%s]')`, js(ifaceID(t, a, va)))
	wait("counters shown", ga+`?.dataset.rxPackets?.match(/^[0-9]+$/) != null`)
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](ga+`.querySelector('g.capture').dispatchEvent(new MouseEvent('click', {bubbles: true}))`)); err != nil {
		t.Fatal(err)
	}
	wait("the stop button ready", `[...document.querySelectorAll('#captures button')].some(b => b.textContent == 'stop' && !b.disabled)`)
	nstest.Run(t, "ip", "netns", "exec", b, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.79.0.1")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#captures button').dispatchEvent(new MouseEvent('click', {bubbles: true}))`)); err != nil {
		t.Fatal(err)
	}
	wait("the capture saved with the kernel's drop count", `[...document.querySelectorAll('#captures .capture')].some(c => / captured, [0-9]+ received by filter, [0-9]+ dropped by kernel/.test(c.textContent))`)
	file := filepath.Join(dl, "netobs-"+va+".pcapng")
	for deadline := time.Now().Add(pageWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(file); err == nil {
			break
		}
	}
	if n := tsharkCount(t, file, "icmp"); n < 6 {
		t.Errorf("the page's capture %s: tshark counts %d ICMP packets, want 6", file, n)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("NETOBS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "netobs-artifacts")
	}
	os.MkdirAll(dir, 0o755)
	shot := filepath.Join(dir, "serve-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}

// post sends a POST to url with the headers given as name, value pairs.
func post(t *testing.T, ctx context.Context, url string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// tsharkCount counts the packets of file that match a display filter.
func tsharkCount(t *testing.T, file, filter string) int {
	t.Helper()
	out := nstest.Run(t, "tshark", "-n", "-r", file, "-Y", filter, "-T", "fields", "-e", "frame.number")
	return len(strings.Fields(out))
}

// TestCapture captures on a veth of a test namespace through the API,
// pings across it, and reads the stream with tshark: once ended by the
// stop request (the statistics block at the end included), once by the
// client going away. A cross-origin POST is refused before anything runs.
func TestCapture(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tshark")
	a, b := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.83.0.1/24", b, "10.83.0.2/24")
	h, err := nsjoin.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	nsID := fmt.Sprintf("net:[%d]", h.ID().Inode)
	h.Close()
	base := serve(t)
	origin := strings.TrimSuffix(base, "/")
	target := base + "api/capture?ns=" + nsID + "&iface=" + va
	dir := t.TempDir()

	for _, hdr := range [][]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "cross-site"}, {"Origin", origin, "Sec-Fetch-Site", "same-site"}} {
		resp := post(t, context.Background(), target, hdr...)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with %q: %s, want 403", hdr, resp.Status)
		}
	}
	resp := post(t, context.Background(), base+"api/capture?ns=net:[1]&iface=lo", "Origin", origin)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("capture in net:[1]: %s, want 404", resp.Status)
	}

	for _, how := range []string{"stop", "disconnect"} {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := post(t, ctx, target, "Origin", origin, "Sec-Fetch-Site", "same-origin")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pcapng" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("%s: %s %q", how, resp.Status, resp.Header)
		}
		file := filepath.Join(dir, how+".pcapng")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := io.Copy(f, resp.Body); done <- err }()
		nstest.Run(t, "ip", "netns", "exec", b, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.83.0.1")
		if how == "stop" {
			stop := post(t, context.Background(), base+"api/capture/stop?id="+resp.Header.Get("X-Netobs-Capture"), "Origin", origin)
			var counts CaptureCounts
			err := json.NewDecoder(stop.Body).Decode(&counts)
			stop.Body.Close()
			if stop.StatusCode != http.StatusOK || err != nil || counts.Captured < 6 || counts.Received < counts.Captured {
				t.Errorf("stop: %s, counts %+v (%v): want 200 with at least the 6 ICMP packets captured", stop.Status, counts, err)
			}
			if err := <-done; err != nil {
				t.Errorf("stream after stop: %v", err)
			}
		} else {
			// The body holds what was flushed once the replies are in.
			for deadline := time.Now().Add(pageWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if fi, _ := f.Stat(); fi != nil && fi.Size() > 0 && tsharkCount(t, file, "icmp.type == 0") >= 3 {
					break
				}
			}
			cancel()
			<-done
		}
		resp.Body.Close()
		f.Close()
		if n := tsharkCount(t, file, "icmp"); n < 6 {
			t.Errorf("%s: tshark counts %d ICMP packets in the capture, want 6", how, n)
		}
		// The stop ends the stream with the statistics block (the
		// kernel's drop count); a client that went away gets none.
		_, ifcs, err := nstest.ReadPcap(file)
		if how == "stop" && (err != nil || len(ifcs) != 1 || !ifcs[0].HasStats || ifcs[0].IfRecv < 6) {
			t.Errorf("stop: interfaces %+v, %v: want one with statistics", ifcs, err)
		}
	}
	resp = post(t, context.Background(), base+"api/capture/stop?id=nope", "Origin", origin)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("stop of an unknown capture: %s, want 404", resp.Status)
	}
}

// TestSockets asks /api/sockets for a test namespace holding a listener
// of this process: it is there with this process as its owner, and ss
// run inside the namespace lists the same listening port. An unknown
// namespace is 404, a missing parameter 400.
func TestSockets(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ss")
	ns := pubtest.NewNamedNetNS(t)
	ln := pubtest.Listen(t, ns, "tcp4", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	base := serve(t)

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, body := get(fmt.Sprintf("api/sockets?ns=net:[%d]", ns.ID().Inode))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("sockets: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var socks []struct {
		Netid, State, Local string
		LocalPort           int `json:"local_port"`
		Processes           []struct {
			PID int `json:"pid"`
		}
	}
	if err := json.Unmarshal(body, &socks); err != nil {
		t.Fatalf("sockets: %v: %s", err, body)
	}
	ssOut := nstest.Run(t, "ip", "netns", "exec", ns.Ref(), "ss", "-Hltn")
	var ssPorts, apiPorts []string
	for _, l := range strings.Split(strings.TrimSpace(ssOut), "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			ssPorts = append(ssPorts, f[3])
		}
	}
	found := false
	for _, s := range socks {
		if s.Netid == "tcp" && s.State == "LISTEN" {
			apiPorts = append(apiPorts, s.Local)
		}
		if s.Netid == "tcp" && s.State == "LISTEN" && s.LocalPort == port &&
			len(s.Processes) == 1 && s.Processes[0].PID == os.Getpid() {
			found = true
		}
	}
	if !found {
		t.Errorf("the listener on port %d held by pid %d is not in %s", port, os.Getpid(), body)
	}
	if strings.Join(apiPorts, " ") != strings.Join(ssPorts, " ") {
		t.Errorf("listening TCP sockets: API %q, ss %q", apiPorts, ssPorts)
	}

	if resp, body := get("api/sockets?ns=net:[1]"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("sockets of net:[1]: %s %s, want 404", resp.Status, body)
	}
	if resp, body := get("api/sockets"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("sockets without ns: %s %s, want 400", resp.Status, body)
	}
}

// pageWait bounds how long a test waits for the page or a file to show
// what it must: not a speed goal, only the point where a test that will
// never see it gives up, generous for a loaded machine (a 20 s wait for
// Chromium timed out while other test suites shared the 2 CPUs).
const pageWait = 2 * time.Minute

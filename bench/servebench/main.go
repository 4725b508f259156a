//go:build linux

// Command servebench measures a running `netobs serve` with its page open
// in headless Chromium: netobs's CPU while idle (from /proc/PID/stat) and
// the time from a change made with ip to the change on the page (the new
// interface drawn, its event in the log). bench/70-serve.sh runs it
// against a server watching its 500 namespaces; it needs root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After the command: state is field 3, utime 14 and stime 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	t, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return u + t, nil
}

const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux

func main() {
	url := flag.String("url", "", "the page's URL")
	pid := flag.Int("pid", 0, "netobs serve's PID")
	ns := flag.String("ns", "", "named namespace to make changes in")
	idle := flag.Duration("idle", 30*time.Second, "idle measurement")
	changes := flag.Int("changes", 5, "changes to time")
	flag.Parse()
	if *url == "" || *pid == 0 || *ns == "" {
		fmt.Fprintln(os.Stderr, "servebench: want -url, -pid and -ns")
		os.Exit(2)
	}
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		fmt.Fprintln(os.Stderr, "servebench: needs chromium (make deps)")
		os.Exit(1)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "servebench: %s: %v\n", what, err)
		cancel()
		acancel()
		os.Exit(1)
	}
	poll := func(expr string, timeout time.Duration) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(5*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
		return err
	}
	t0 := time.Now()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(*url)); err != nil {
		fail("open the page", err)
	}
	if err := poll(`document.getElementById('status').textContent == 'live' && document.body.dataset.loaded != undefined`, 120*time.Second); err != nil {
		fail("page live", err)
	}
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('g.ns').length`))
	if err != nil {
		fail("count namespaces", err)
	}
	fmt.Printf("page loaded and live in %.1f s, %d namespaces drawn\n", time.Since(t0).Seconds(), drawn)

	// Idle: let the first load settle, then count netobs's CPU ticks.
	time.Sleep(3 * time.Second)
	c0, err := cpuTicks(*pid)
	if err != nil {
		fail("netobs CPU", err)
	}
	w0 := time.Now()
	time.Sleep(*idle)
	c1, err := cpuTicks(*pid)
	if err != nil {
		fail("netobs CPU", err)
	}
	wall := time.Since(w0).Seconds()
	fmt.Printf("idle CPU of netobs serve over %.0f s: %.2f %% of one core (%d ticks)\n", wall, 100*float64(c1-c0)/clkTck/wall, c1-c0)

	// Changes: a new veth pair in ns; time until
	// its event is in the log and until it is drawn.
	var evLat, drawLat []time.Duration
	for i := 0; i < *changes; i++ {
		name := fmt.Sprintf("sb%d_%d", os.Getpid()%10000, i)
		start := time.Now()
		if out, err := exec.Command("ip", "-n", *ns, "link", "add", name, "type", "veth", "peer", "name", name+"p").CombinedOutput(); err != nil {
			fail("ip link add", fmt.Errorf("%v: %s", err, out))
		}
		q := strconv.Quote(name)
		if err := poll(fmt.Sprintf(`[...document.querySelectorAll('#log li')].some(l => l.textContent.includes(%s))`, q), 30*time.Second); err != nil {
			fail("event of "+name, err)
		}
		evLat = append(evLat, time.Since(start))
		if err := poll(fmt.Sprintf(`[...document.querySelectorAll('g.iface text')].some(t => t.textContent.startsWith(%s + '  '))`, q), 30*time.Second); err != nil {
			fail(name+" drawn", err)
		}
		drawLat = append(drawLat, time.Since(start))
		exec.Command("ip", "-n", *ns, "link", "del", name).Run()
		time.Sleep(2 * time.Second)
	}
	med := func(d []time.Duration) (time.Duration, time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2], d[len(d)-1]
	}
	m, x := med(evLat)
	fmt.Printf("change -> event in the page's log: median %d ms, max %d ms (%d changes)\n", m.Milliseconds(), x.Milliseconds(), len(evLat))
	m, x = med(drawLat)
	fmt.Printf("change -> interface drawn (topology refetched): median %d ms, max %d ms\n", m.Milliseconds(), x.Milliseconds())
}

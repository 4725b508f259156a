//go:build linux

// Command eventsbench measures `netobs events --all` against one
// `ip monitor` per namespace, side by side in one run: peak memory while
// watching N namespaces, latency from a change made with ip to its event,
// and whether a burst of changes loses any event. bench/50-events.sh runs
// it; it needs root and makes (and removes) its own namespaces.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netobs/netobs/nsjoin"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	netobsBin = flag.String("netobs", "bin/netobs", "netobs binary")
	counts    = flag.String("counts", "10,100,1000", "numbers of namespaces to watch")
	changes   = flag.Int("changes", 200, "changes made one by one to measure latency")
	burst     = flag.Int("burst", 10000, "changes made in one burst (ip -batch)")
	anchorMax = flag.Int("anchor-max", 1000, "largest count run with the ip monitor anchor (one process of about 2.5 MB per namespace)")
	prefixF   = flag.String("prefix", "", "name prefix of the namespaces made (default evbPID); bench/50-events.sh removes what is left with it")
	prefix    string
)

// Namespace work happens on other threads; main keeps its own.
func init() { runtime.LockOSThread() }

func main() {
	flag.Parse()
	prefix = *prefixF
	if prefix == "" {
		prefix = fmt.Sprintf("evb%d", os.Getpid()%100000)
	}
	if os.Geteuid() != 0 {
		fatalf("needs root")
	}
	fmt.Println("RSS is steady / peak; the ratio is steady RSS of the ip monitor processes over netobs's.")
	fmt.Println("Latency is from the start of `ip -n NS addr add` to the event reaching its reader (p50 / p99), for both.")
	fmt.Printf("%-6s %-8s %-22s %-26s %-7s %-18s %-18s %s\n", "netns", "watched", "netobs RSS", "N x ip monitor RSS", "ratio", "netobs latency", "ip monitor latency", "burst: events delivered")
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("bad count %q", s)
		}
		if err := runOne(n); err != nil {
			fatalf("%d namespaces: %v", n, err)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "eventsbench: "+format+"\n", args...)
	os.Exit(1)
}

// command is exec.Command for a child that dies with the bench: killed
// (SIGKILL) when the thread that started it ends, which is the main
// thread (locked in init), so when the bench ends in any way. An `ip
// monitor` or netobs left running would hold its namespace after the
// script has deleted the name.
func command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return c
}

func ipBatch(lines []string) error {
	f, err := os.CreateTemp("", "eventsbench")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	f.WriteString(strings.Join(lines, "\n") + "\n")
	f.Close()
	out, err := command("ip", "-force", "-batch", f.Name()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -batch: %v: %s", err, out)
	}
	return nil
}

type event struct {
	Time time.Time `json:"time"`
	NS   struct {
		Name string `json:"name"`
	} `json:"ns"`
	Kind   string `json:"kind"`
	Action string `json:"action"`
	Text   string `json:"text"`
}

// watcher is a running `netobs events --all`; it records when each
// address of interest was reported.
type watcher struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	seen    map[string]time.Time // "ns addr" -> when the reader got the line
	stamp   map[string]time.Time // "ns addr" -> netobs's own time stamp
	resyncs int
	ready   chan int
	done    chan struct{}
}

func startWatcher() (*watcher, error) {
	w := &watcher{seen: map[string]time.Time{}, stamp: map[string]time.Time{}, ready: make(chan int, 1), done: make(chan struct{})}
	w.cmd = command(*netobsBin, "events", "--all", "--json", "--kinds", "link,addr,route")
	stdout, _ := w.cmd.StdoutPipe()
	stderr, _ := w.cmd.StderrPipe()
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	failed := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var said []string
		for sc.Scan() {
			var k int
			if _, err := fmt.Sscanf(sc.Text(), "events: watching %d", &k); err == nil {
				w.ready <- k
			} else if len(said) < 5 {
				said = append(said, sc.Text())
			}
		}
		failed <- strings.Join(said, "; ") // netobs ended: say why
	}()
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			line := sc.Bytes()
			now := time.Now()
			if !strings.Contains(string(line), prefix) {
				continue // other namespaces on the machine
			}
			var ev event
			if json.Unmarshal(line, &ev) != nil {
				continue
			}
			w.mu.Lock()
			switch {
			case ev.Action == "resync":
				w.resyncs++
			case ev.Kind == "addr" && ev.Action == "add":
				// "1: lo inet 10.200.0.7/32 scope host"
				f := strings.Fields(ev.Text)
				if len(f) >= 4 {
					// When the line reached the reader, not netobs's own
					// stamp: the output path counts too.
					w.seen[ev.NS.Name+" "+f[3]] = now
					w.stamp[ev.NS.Name+" "+f[3]] = ev.Time
				}
			}
			w.mu.Unlock()
		}
	}()
	select {
	case n := <-w.ready:
		_ = n
	case why := <-failed:
		w.cmd.Wait()
		return nil, fmt.Errorf("netobs ended before watching: %s", why)
	case <-time.After(2*time.Minute + time.Duration(watchedCount())*20*time.Millisecond):
		w.cmd.Process.Kill()
		return nil, fmt.Errorf("netobs did not start")
	}
	return w, nil
}

func (w *watcher) when(key string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[key]
	return t, ok
}

func (w *watcher) count(pfx string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k := range w.seen {
		if strings.HasPrefix(k, pfx) {
			n++
		}
	}
	return n
}

func (w *watcher) stop() {
	w.cmd.Process.Signal(syscall.SIGINT)
	<-w.done
	w.cmd.Wait()
}

// statusKB reads a field (VmHWM, VmRSS) of /proc/PID/status in KiB.
func statusKB(pid int, field string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			k, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return k
		}
	}
	return 0
}

func pssKB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			k, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return k
		}
	}
	return 0
}

func watchedCount() int { // namespaces netobs --all sees: those with a name or a process
	seen := map[uint64]bool{}
	var st syscall.Stat_t
	names, _ := filepath.Glob("/run/netns/*")
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range append(names, procs...) {
		if syscall.Stat(p, &st) == nil {
			seen[st.Ino] = true
		}
	}
	return len(seen)
}

func runOne(n int) error {
	names := make([]string, n)
	var add, del []string
	for i := range names {
		names[i] = fmt.Sprintf("%s_%d_%d", prefix, n, i)
		add = append(add, "netns add "+names[i])
		del = append(del, "netns del "+names[i])
	}
	if err := ipBatch(add); err != nil {
		return err
	}
	defer ipBatch(del)
	for _, name := range names { // over netlink: 10,000 ip processes take minutes
		if err := loUp(name); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "eventsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	w, err := startWatcher()
	if err != nil {
		return err
	}
	defer w.stop()
	watched := watchedCount()
	// The anchor: one `ip monitor` per namespace, watching the same kinds,
	// with timestamps, each writing to its own file.
	var mons []*exec.Cmd
	defer func() {
		for _, c := range mons {
			c.Process.Kill()
			c.Wait()
		}
	}()
	anchor := n <= *anchorMax
	for _, name := range names {
		if !anchor {
			break
		}
		out, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		c := command("ip", "-ts", "-n", name, "monitor", "link", "address", "route")
		c.Stdout = out
		if err := c.Start(); err != nil {
			return err
		}
		out.Close()
		mons = append(mons, c)
	}
	time.Sleep(time.Second + time.Duration(n)*time.Millisecond) // both settle
	steady := statusKB(w.cmd.Process.Pid, "VmRSS")
	var monSteady int
	for _, c := range mons {
		monSteady += statusKB(c.Process.Pid, "VmRSS")
	}

	// Latency: one change at a time, spread over the namespaces, measured
	// from the start of the ip command for both observers.
	type change struct {
		ns, addr string
		t0       time.Time
	}
	var made []change
	var lat []time.Duration
	for i := 0; i < *changes; i++ {
		ns := names[i%n]
		addr := fmt.Sprintf("10.200.%d.%d/32", i/250, i%250+1)
		t0 := time.Now()
		if out, err := command("ip", "-n", ns, "addr", "add", addr, "dev", "lo").CombinedOutput(); err != nil {
			return fmt.Errorf("ip addr add: %v: %s", err, out)
		}
		made = append(made, change{ns, addr, t0})
		deadline := time.Now().Add(5 * time.Second)
		for {
			if te, ok := w.when(ns + " " + addr); ok {
				lat = append(lat, te.Sub(t0))
				break
			}
			if time.Now().After(deadline) {
				lat = append(lat, time.Hour) // lost: counts as worst
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
	}

	// The same, with the change made over netlink from this process, so
	// the start of the change is known to a few microseconds.
	var direct, stamped []time.Duration
	for i := 0; i < *changes; i++ {
		ns := names[i%n]
		addr := fmt.Sprintf("10.202.%d.%d/32", i/250, i%250+1)
		t0, err := netlinkAddrAdd(ns, addr)
		if err != nil {
			return err
		}
		made = append(made, change{ns, addr, t0})
		deadline := time.Now().Add(5 * time.Second)
		for {
			if te, ok := w.when(ns + " " + addr); ok {
				direct = append(direct, te.Sub(t0))
				w.mu.Lock()
				stamped = append(stamped, w.stamp[ns+" "+addr].Sub(t0))
				w.mu.Unlock()
				break
			}
			if time.Now().After(deadline) {
				direct = append(direct, time.Hour)
				stamped = append(stamped, time.Hour)
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}

	// Burst: many changes into one namespace at once.
	bns := names[0]
	var lines []string
	for i := 0; i < *burst; i++ {
		lines = append(lines, fmt.Sprintf("addr add 10.%d.%d.%d/32 dev lo", 201+i/62500, (i/250)%250, i%250+1))
	}
	f, _ := os.CreateTemp("", "eventsbench")
	f.WriteString(strings.Join(lines, "\n") + "\n")
	f.Close()
	defer os.Remove(f.Name())
	w.mu.Lock()
	resyncsBefore := w.resyncs
	w.mu.Unlock()
	if out, err := command("ip", "-n", bns, "-batch", f.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("burst: %v: %s", err, out)
	}
	var got int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = w.count(bns + " 10.201."); got >= *burst {
			break
		}
	}
	w.mu.Lock()
	resyncs := w.resyncs - resyncsBefore
	w.mu.Unlock()
	time.Sleep(500 * time.Millisecond) // let ip monitor finish writing too
	peak := statusKB(w.cmd.Process.Pid, "VmHWM")
	pss := pssKB(w.cmd.Process.Pid)
	var monPeak, monPSS int
	for _, c := range mons {
		monPeak += statusKB(c.Process.Pid, "VmHWM")
		monPSS += pssKB(c.Process.Pid)
	}

	// The anchor's latency and burst count, from its files.
	monTimes := map[string]time.Time{}
	monBurst := 0
	for _, name := range names {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		for _, l := range strings.Split(string(b), "\n") {
			// [2026-11-29T06:13:19.684207] 1: lo    inet 10.3.3.3/32 scope global lo
			if len(l) < 28 || l[0] != '[' || !strings.Contains(l, " inet 10.20") {
				continue
			}
			t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", l[1:27], time.Local)
			if err != nil {
				continue
			}
			fs := strings.Fields(l[28:])
			if len(fs) >= 4 {
				if strings.HasPrefix(fs[3], "10.201.") {
					monBurst++
				}
				monTimes[name+" "+fs[3]] = t
			}
		}
	}
	var monLat, monDirect []time.Duration
	for i, c := range made {
		d := time.Hour
		if t, ok := monTimes[c.ns+" "+c.addr]; ok {
			d = t.Sub(c.t0)
		}
		if i < *changes {
			monLat = append(monLat, d)
		} else {
			monDirect = append(monDirect, d)
		}
	}
	sortD(lat)
	sortD(monLat)
	sortD(direct)
	sortD(stamped)
	sortD(monDirect)
	monRSS, ratio, monL, monD, monB := "-", "-", "-", "-", "no anchor"
	if anchor {
		monRSS = fmt.Sprintf("%.1f / %.1f MB", float64(monSteady)/1024, float64(monPeak)/1024)
		ratio = fmt.Sprintf("%.1fx", float64(monSteady)/float64(steady))
		monL = ms(pct(monLat, 50)) + " / " + ms(pct(monLat, 99))
		monD = ms(pct(monDirect, 50)) + " / " + ms(pct(monDirect, 99))
		monB = fmt.Sprintf("ip monitor %d/%d", monBurst, *burst)
	}
	fmt.Printf("%-6d %-8d %-22s %-26s %-7s %-18s %-18s %d/%d (%s), %d resyncs\n",
		n, watched,
		fmt.Sprintf("%.1f / %.1f MB", float64(steady)/1024, float64(peak)/1024),
		monRSS, ratio,
		ms(pct(lat, 50))+" / "+ms(pct(lat, 99)),
		monL, got, *burst, monB, resyncs)
	fmt.Printf("       change made over netlink (p50 / p99): netobs %s / %s to its reader, %s / %s by its own stamp; ip monitor %s by its -ts stamp\n",
		ms(pct(direct, 50)), ms(pct(direct, 99)), ms(pct(stamped, 50)), ms(pct(stamped, 99)), monD)
	if anchor {
		fmt.Printf("       PSS: netobs %.1f MB, the %d ip monitor processes %.1f MB together\n", float64(pss)/1024, n, float64(monPSS)/1024)
	} else {
		fmt.Printf("       PSS: netobs %.1f MB (no ip monitor anchor above %d namespaces)\n", float64(pss)/1024, *anchorMax)
	}
	return nil
}

// netlinkAddrAdd adds an address to lo in namespace ns over a netlink
// handle made inside it, and returns the moment just before the request.
func netlinkAddrAdd(ns, cidr string) (time.Time, error) {
	h, err := nsHandle(ns)
	if err != nil {
		return time.Time{}, err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return time.Time{}, err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return time.Time{}, err
	}
	t0 := time.Now()
	return t0, h.AddrAdd(lo, a)
}

// loUp sets lo up in namespace ns over netlink.
func loUp(ns string) error {
	h, err := nsHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	return h.LinkSetUp(lo)
}

func nsHandle(name string) (*netlink.Handle, error) {
	ns, err := nsjoin.Open(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	var h *netlink.Handle
	err = ns.Do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}

func sortD(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return time.Hour
	}
	return d[(len(d)-1)*p/100]
}

func ms(d time.Duration) string {
	if d >= time.Hour {
		return "lost"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

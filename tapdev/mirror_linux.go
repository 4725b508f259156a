package tapdev

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/netobs/netobs/internal/nlwire"
	"github.com/netobs/netobs/nsjoin"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The mirror copies every frame of an interface's ingress and egress into
// the device and changes nothing else:
//
//   - Its filters are u32 nodes with an empty key (they match every
//     frame; cls_matchall is missing from many kernels) and one mirred
//     egress-mirror action whose control is "continue" (TC_ACT_UNSPEC).
//     tcf_action_exec returns that control as the filter's verdict, and
//     tcf_classify goes on to the next filter for a negative verdict, so
//     the user's filters run as if the mirror were not there. With
//     "pipe", the verdict would be TC_ACT_PIPE, which ends classification
//     and disables every filter after the mirror.
//   - The filters go in front of the user's filters (the priority below
//     the lowest in use), so the device sees frames before a user filter
//     redirects or drops them, as tcpdump does.
//   - Each mirred action carries a cookie (owner) naming the netobs
//     process, so netobs removes only its own filters, and those of a
//     netobs that died without cleaning up (SIGKILL).
//   - The clsact qdisc is removed only if a netobs made it and no filter
//     is left on it.
//
// vishvananda/netlink cannot set or read action cookies, so the filters
// are added, listed and deleted with netlink messages built here, on a
// NETLINK_ROUTE socket opened in the target namespace.

// tcSock is a NETLINK_ROUTE socket bound to the target namespace for tc
// filter requests. Its replies are read by nl.NetlinkRequest, which fails a
// request on a message not sent by the kernel; the socket is connected to
// the kernel, so the kernel refuses what other sockets of the namespace
// send it, and a process in the target cannot make the mirror's removal
// fail.
type tcSock struct{ sh *nl.SocketHandle }

// openTC opens the socket on the calling thread, which must be in the
// target namespace (inside nsjoin's Do).
func openTC() (*tcSock, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := nlwire.ConnectKernel(s.GetFd()); err != nil {
		s.Close()
		return nil, err
	}
	return &tcSock{sh: &nl.SocketHandle{Socket: s}}, nil
}

func (t *tcSock) close() {
	if t != nil && t.sh != nil {
		t.sh.Close()
		t.sh = nil
	}
}

func (t *tcSock) request(typ, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: t.sh}
	return req
}

// filters lists the filters of one clsact parent of an interface.
func (t *tcSock) filters(ifindex int, parent uint32) ([]tcFilter, error) {
	req := t.request(unix.RTM_GETTFILTER, unix.NLM_F_DUMP)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(ifindex), Parent: parent})
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWTFILTER)
	if err != nil {
		return nil, fmt.Errorf("list filters: %w", err)
	}
	var fs []tcFilter
	for _, m := range msgs {
		f, err := parseFilter(m)
		if err != nil {
			return nil, fmt.Errorf("list filters: %w", err)
		}
		// A dump names the interface and parent asked for; a message
		// that does not is not about them.
		if f.ifindex == int32(ifindex) && f.parent == parent {
			fs = append(fs, f)
		}
	}
	return fs, nil
}

// addMirrorFilter adds a u32 filter at prio on parent that mirrors every
// frame to the device tapIndex and lets classification continue.
func (t *tcSock) addMirrorFilter(ifindex int, parent uint32, prio uint16, tapIndex int, cookie []byte) error {
	req := t.request(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{
		Family:  nl.FAMILY_ALL,
		Ifindex: int32(ifindex),
		Parent:  parent,
		Info:    uint32(prio)<<16 | uint32(nl.Swap16(unix.ETH_P_ALL)),
	})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("u32")))
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	// One key with an empty mask: matches every frame, as `tc ... u32
	// match u32 0 0` does.
	sel := nl.TcU32Sel{Flags: nl.TC_U32_TERMINAL, Nkeys: 1, Keys: []nl.TcU32Key{{}}}
	opts.AddRtAttr(nl.TCA_U32_SEL, sel.Serialize())
	acts := opts.AddRtAttr(nl.TCA_U32_ACT, nil)
	act := acts.AddRtAttr(1, nil)
	act.AddRtAttr(nl.TCA_ACT_KIND, nl.ZeroTerminated("mirred"))
	aopts := act.AddRtAttr(nl.TCA_ACT_OPTIONS, nil)
	m := nl.TcMirred{Eaction: int32(netlink.TCA_EGRESS_MIRROR), Ifindex: uint32(tapIndex)}
	m.Action = int32(netlink.TC_ACT_UNSPEC) // "continue"
	aopts.AddRtAttr(nl.TCA_MIRRED_PARMS, m.Serialize())
	act.AddRtAttr(nl.TCA_ACT_COOKIE, cookie)
	req.AddData(opts)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// delFilter deletes one filter (a u32 node), then its priority if no
// node is left there: cls_u32 shares its table between the ingress and
// egress parents of a qdisc and keeps an emptied priority (with its root
// hash table) while the other parent has u32 filters.
func (t *tcSock) delFilter(f tcFilter) error {
	if err := t.del(f, f.handle); err != nil {
		return err
	}
	if f.kind != "u32" {
		return nil
	}
	fs, err := t.filters(int(f.ifindex), f.parent)
	if err != nil {
		return ignoreGone(err)
	}
	for _, g := range fs {
		if g.prio == f.prio && g.isNode() {
			return nil
		}
	}
	return t.del(f, 0)
}

// del deletes the filter handle of f's priority, or the whole priority
// if handle is 0.
func (t *tcSock) del(f tcFilter, handle uint32) error {
	req := t.request(unix.RTM_DELTFILTER, unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{
		Family:  nl.FAMILY_ALL,
		Ifindex: f.ifindex,
		Handle:  handle,
		Parent:  f.parent,
		Info:    uint32(f.prio)<<16 | uint32(nl.Swap16(f.proto)),
	})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated(f.kind)))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return ignoreGone(err)
}

// ignoreGone drops the errors that say the filter, its qdisc or its
// interface is already gone.
func ignoreGone(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return err
}

var clsactParents = []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS}

func parentName(p uint32) string {
	if p == netlink.HANDLE_MIN_INGRESS {
		return "ingress"
	}
	return "egress"
}

// self is this process as a filter owner.
var self = sync.OnceValues(func() (owner, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return owner{}, os.NewSyscallError("stat /proc/self/ns/pid", err)
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return owner{}, err
	}
	start, err := procStart(b)
	if err != nil {
		return owner{}, fmt.Errorf("/proc/self/stat: %w", err)
	}
	return owner{pidNS: uint32(st.Ino), pid: uint32(os.Getpid()), start: uint32(start)}, nil
})

// gone reports whether the process that added a filter has exited. A
// process of another PID namespace cannot be looked up from here and
// counts as alive.
func (o owner) gone() bool {
	me, err := self()
	if err != nil || o.pidNS != me.pidNS {
		return false
	}
	if o.sameProcess(me) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(o.pid), 10) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
	}
	start, err := procStart(b)
	return err == nil && uint32(start) != o.start
}

// mirrorRules is what addMirror added.
type mirrorRules struct {
	link netlink.Link
	me   owner // the cookie's owner, with the qdisc flag as added
	// prios of the filters on the ingress and egress parents.
	prios [2]uint16
	added [2]bool
	// qdisc: the clsact qdisc exists (made by this or an earlier netobs)
	// for netobs, so the last netobs filter to go removes it.
	qdisc bool
}

// clsact returns the interface's clsact qdisc, or nil.
func clsact(h *netlink.Handle, link netlink.Link) (netlink.Qdisc, error) {
	qs, err := h.QdiscList(link)
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return q, nil
		}
	}
	return nil, nil
}

// sweep removes the filters of netobs processes that are gone from the
// interface's clsact parents. It reports what it removed and whether any
// netobs filter (alive or gone) said the qdisc is netobs's.
func sweep(t *tcSock, link netlink.Link) (removed []Removed, netobsQdisc bool, err error) {
	idx := link.Attrs().Index
	for _, parent := range clsactParents {
		fs, err := t.filters(idx, parent)
		if err != nil {
			return removed, netobsQdisc, err
		}
		for _, f := range fs {
			o, ok := f.netobsOwner()
			if !ok {
				continue
			}
			netobsQdisc = netobsQdisc || o.qdisc
			if !o.gone() {
				continue
			}
			if err := t.delFilter(f); err != nil {
				return removed, netobsQdisc, fmt.Errorf("delete stale filter: %w", err)
			}
			removed = append(removed, Removed{Interface: link.Attrs().Name, What: parentName(parent) + " filter pref " + strconv.Itoa(int(f.prio)), Owner: int(o.pid)})
		}
	}
	return removed, netobsQdisc, nil
}

// hasFilters reports whether any filter is left on the interface's
// clsact parents.
func hasFilters(t *tcSock, ifindex int) (bool, error) {
	for _, parent := range clsactParents {
		fs, err := t.filters(ifindex, parent)
		if err != nil {
			return false, err
		}
		if len(fs) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// mirrorPrio picks where a mirror filter goes among the filters of a
// parent (fs): in front of all of them, at the priority below the lowest
// in use or at 0xc000 (the kernel's first automatic priority), whichever
// is lower. If nothing can go in front, the mirror goes after every filter
// and sees what they let through.
//
// The priority is also kept free on the other clsact parent (other):
// cls_u32 keeps the nodes of both parents of a qdisc in one table and
// lists and looks them up by priority alone, so u32 filters at one
// priority on ingress and egress show up (and could be deleted) on both.
func mirrorPrio(fs, other []tcFilter) (uint16, error) {
	used := map[uint16]bool{}
	lowest := uint16(0xc001)
	for _, f := range fs {
		used[f.prio] = true
		lowest = min(lowest, f.prio)
	}
	for _, f := range other {
		used[f.prio] = true
	}
	for p := lowest - 1; p > 0; p-- {
		if !used[p] {
			return p, nil
		}
	}
	for p := uint16(0xffff); p > lowest; p-- {
		if !used[p] {
			return p, nil
		}
	}
	return 0, errors.New("no free filter priority")
}

// addMirror mirrors the ingress and egress of iface into the device
// tapIndex. It first removes the filters of netobs processes that are
// gone. On error, the returned rules hold what was added.
func addMirror(h *netlink.Handle, t *tcSock, iface string, tapIndex int) (*mirrorRules, error) {
	link, err := h.LinkByName(iface)
	if err != nil {
		if isNotFound(err) {
			return nil, errors.New("no such interface")
		}
		return nil, err
	}
	me, err := self()
	if err != nil {
		return nil, fmt.Errorf("identify this process: %w", err)
	}
	m := &mirrorRules{link: link, me: me}
	q, err := clsact(h, link)
	if err != nil {
		return nil, err
	}
	if q != nil {
		if _, m.qdisc, err = sweep(t, link); err != nil {
			return nil, err
		}
	} else {
		q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		}}
		if err := h.QdiscAdd(q); err != nil {
			return nil, fmt.Errorf("add clsact qdisc: %w", err)
		}
		m.qdisc = true
	}
	m.me.qdisc = m.qdisc
	for i, parent := range clsactParents {
		for try := 0; ; try++ {
			fs, err := t.filters(link.Attrs().Index, parent)
			if err != nil {
				return m, err
			}
			other, err := t.filters(link.Attrs().Index, clsactParents[1-i])
			if err != nil {
				return m, err
			}
			prio, err := mirrorPrio(fs, other)
			if err != nil {
				return m, err
			}
			err = t.addMirrorFilter(link.Attrs().Index, parent, prio, tapIndex, m.me.cookie())
			if errors.Is(err, unix.EEXIST) && try < 10 {
				// Another process took the priority between the list
				// and the add.
				continue
			}
			if err != nil {
				return m, fmt.Errorf("add mirred filter: %w", err)
			}
			m.prios[i], m.added[i] = prio, true
			break
		}
	}
	return m, nil
}

// remove deletes this process's mirror filters, then the clsact qdisc if
// it is netobs's and no filter is left on it.
func (m *mirrorRules) remove(h *netlink.Handle, t *tcSock) error {
	var errs []error
	idx := m.link.Attrs().Index
	for i, parent := range clsactParents {
		if !m.added[i] {
			continue
		}
		fs, err := t.filters(idx, parent)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			// The interface or its qdisc is gone, and the filters with it.
			return nil
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range fs {
			if o, ok := f.netobsOwner(); ok && o.sameProcess(m.me) && f.prio == m.prios[i] {
				if err := t.delFilter(f); err != nil {
					errs = append(errs, fmt.Errorf("delete %s filter pref %d: %w", parentName(parent), f.prio, err))
				}
			}
		}
		m.added[i] = false
	}
	if m.qdisc && len(errs) == 0 {
		left, err := hasFilters(t, idx)
		switch {
		case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT):
		case err != nil:
			errs = append(errs, err)
		case !left:
			q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
			if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("delete clsact qdisc: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes, from every interface of the network namespace ns, the
// mirror filters of netobs processes that are gone (killed before they
// could clean up) and the clsact qdiscs a netobs made that no filter uses
// any more. The user's filters and qdiscs, and those of running netobs
// processes, are left alone. It needs CAP_NET_ADMIN in ns.
func Cleanup(ns *nsjoin.NS) ([]Removed, error) {
	removed, err := cleanup(ns)
	if err != nil {
		return removed, fmt.Errorf("clean up tc rules in %s: %w", ns.Ref(), err)
	}
	return removed, nil
}

func cleanup(ns *nsjoin.NS) ([]Removed, error) {
	if ns.Type() != nsjoin.Net {
		return nil, fmt.Errorf("%w: %s is a %s namespace, not net", nsjoin.ErrWrongType, ns.Ref(), ns.Type())
	}
	var h *netlink.Handle
	var t *tcSock
	err := ns.Do(func() error {
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		if err = nlwire.ConnectHandle(h); err != nil {
			return err
		}
		if t, err = openTC(); err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		return nil
	})
	defer func() {
		t.close()
		if h != nil {
			h.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var removed []Removed
	for _, link := range links {
		q, err := clsact(h, link)
		if err != nil {
			return removed, fmt.Errorf("%s: %w", link.Attrs().Name, err)
		}
		if q == nil {
			continue
		}
		r, netobsQdisc, err := sweep(t, link)
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("%s: %w", link.Attrs().Name, err)
		}
		if !netobsQdisc {
			continue
		}
		left, err := hasFilters(t, link.Attrs().Index)
		if err != nil {
			return removed, fmt.Errorf("%s: %w", link.Attrs().Name, err)
		}
		if !left {
			if err := h.QdiscDel(q); ignoreGone(err) != nil {
				return removed, fmt.Errorf("%s: delete clsact qdisc: %w", link.Attrs().Name, err)
			}
			removed = append(removed, Removed{Interface: link.Attrs().Name, What: "clsact qdisc"})
		}
	}
	return removed, nil
}

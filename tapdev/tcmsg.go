package tapdev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file reads the tc filter messages the target's kernel sends and
// the cookies netobs marks its mirror filters with. It is portable so that
// its fuzz target runs anywhere; the messages come from a namespace and
// are parsed without trusting a length in them.

// Netlink and tc numbers, as in linux/rtnetlink.h, linux/pkt_cls.h.
const (
	tcaKind     = 1 // TCA_KIND
	tcaOptions  = 2 // TCA_OPTIONS
	tcaU32Act   = 7 // TCA_U32_ACT
	tcaActKind  = 1 // TCA_ACT_KIND
	tcaActCook  = 6 // TCA_ACT_COOKIE
	nlaTypeMask = 0x3fff
	sizeofTcMsg = 20
)

// tcFilter is one entry of a tc filter dump, as much of it as the mirror
// needs.
type tcFilter struct {
	ifindex int32
	handle  uint32
	parent  uint32
	prio    uint16
	proto   uint16 // host byte order
	kind    string
	// cookies of its actions (TCA_ACT_COOKIE), for u32 nodes.
	cookies [][]byte
}

// isNode reports whether f is a filter proper: not the entry a dump
// gives each priority (handle 0), nor a u32 hash table.
func (f tcFilter) isNode() bool {
	return f.handle != 0 && (f.kind != "u32" || f.handle&0xfff != 0)
}

var errShortMsg = errors.New("truncated tc message")

// parseFilter parses the payload of an RTM_NEWTFILTER message: a tcmsg
// and its attributes.
func parseFilter(b []byte) (tcFilter, error) {
	var f tcFilter
	if len(b) < sizeofTcMsg {
		return f, errShortMsg
	}
	ne := binary.NativeEndian
	f.ifindex = int32(ne.Uint32(b[4:]))
	f.handle = ne.Uint32(b[8:])
	f.parent = ne.Uint32(b[12:])
	info := ne.Uint32(b[16:])
	f.prio = uint16(info >> 16)
	f.proto = uint16(info)<<8 | uint16(info)>>8&0xff // ntohs
	var opts []byte
	err := walkAttrs(b[sizeofTcMsg:], func(typ uint16, v []byte) error {
		switch typ {
		case tcaKind:
			f.kind = cString(v)
		case tcaOptions:
			opts = v
		}
		return nil
	})
	if err != nil || f.kind != "u32" || opts == nil {
		return f, err
	}
	err = walkAttrs(opts, func(typ uint16, v []byte) error {
		if typ != tcaU32Act {
			return nil
		}
		// One nested attribute per action, numbered from 1.
		return walkAttrs(v, func(_ uint16, act []byte) error {
			return walkAttrs(act, func(typ uint16, v []byte) error {
				if typ == tcaActCook {
					f.cookies = append(f.cookies, append([]byte(nil), v...))
				}
				return nil
			})
		})
	})
	return f, err
}

// walkAttrs calls fn for each netlink attribute in b, checking every
// length against what is there.
func walkAttrs(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return errShortMsg
		}
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return fmt.Errorf("%w: attribute length %d of %d bytes", errShortMsg, l, len(b))
		}
		if err := fn(typ, b[4:l]); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// owner identifies the netobs process that added a mirror filter; it is
// stored as the cookie of the filter's mirred action, so that a later
// netobs can tell its filters from the user's and remove those whose
// process is gone (killed with SIGKILL, say).
type owner struct {
	pidNS uint32 // inode of the process's PID namespace
	pid   uint32 // as seen in that PID namespace
	start uint32 // start time in clock ticks since boot, low 32 bits
	// qdisc says the clsact qdisc was made by a netobs, so the last
	// netobs filter to go takes it along.
	qdisc bool
}

// cookieMagic starts every netobs cookie; the fourth byte holds flags.
const cookieMagic = "nob"

// cookieLen is the size of a netobs cookie, TC_COOKIE_MAX_SIZE.
const cookieLen = 16

func (o owner) cookie() []byte {
	b := make([]byte, cookieLen)
	copy(b, cookieMagic)
	if o.qdisc {
		b[3] = 1
	}
	binary.BigEndian.PutUint32(b[4:], o.pidNS)
	binary.BigEndian.PutUint32(b[8:], o.pid)
	binary.BigEndian.PutUint32(b[12:], o.start)
	return b
}

// parseCookie reads a netobs cookie; ok is false for any other.
func parseCookie(b []byte) (o owner, ok bool) {
	if len(b) != cookieLen || string(b[:3]) != cookieMagic || b[3]&^1 != 0 {
		return owner{}, false
	}
	return owner{
		qdisc: b[3]&1 != 0,
		pidNS: binary.BigEndian.Uint32(b[4:]),
		pid:   binary.BigEndian.Uint32(b[8:]),
		start: binary.BigEndian.Uint32(b[12:]),
	}, true
}

// sameProcess reports whether two cookies name the same process,
// whatever their flags.
func (o owner) sameProcess(p owner) bool {
	return o.pidNS == p.pidNS && o.pid == p.pid && o.start == p.start
}

// netobsOwner returns the owner of a filter that netobs added.
func (f tcFilter) netobsOwner() (owner, bool) {
	for _, c := range f.cookies {
		if o, ok := parseCookie(c); ok {
			return o, true
		}
	}
	return owner{}, false
}

// procStart reads the start time (field 22) of /proc/PID/stat content.
// The command name (field 2) is in parentheses and may hold anything,
// spaces and parentheses included, so fields are counted after its last
// closing parenthesis.
func procStart(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name in stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("stat has no start time")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

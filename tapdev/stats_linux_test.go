package tapdev

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func statsMsg(seq uint32, typ uint16, body []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(b, body...)
}

// linkWithStats is an RTM_NEWLINK carrying IFLA_STATS64 with counter i
// set to i+1.
func linkWithStats(seq uint32) []byte {
	body := make([]byte, unix.SizeofIfInfomsg)
	attr := make([]byte, 4+8*24)
	binary.NativeEndian.PutUint16(attr[0:], uint16(len(attr)))
	binary.NativeEndian.PutUint16(attr[2:], unix.IFLA_STATS64)
	for i := 0; i < 24; i++ {
		binary.NativeEndian.PutUint64(attr[4+8*i:], uint64(i+1))
	}
	return statsMsg(seq, unix.RTM_NEWLINK, append(body, attr...))
}

func TestParseStats(t *testing.T) {
	st, done, err := parseStats(append(linkWithStats(6), linkWithStats(7)...), 7)
	want := Stats{RxPackets: 1, TxPackets: 2, RxBytes: 3, TxBytes: 4, RxDropped: 7, TxDropped: 8}
	if err != nil || !done || st != want {
		t.Errorf("%+v, done %v, %v; want %+v", st, done, err, want)
	}
	if _, done, err := parseStats(linkWithStats(6), 7); done || err != nil {
		t.Errorf("answer to another request: done %v, %v", done, err)
	}
	errno := -int32(unix.ENODEV)
	enodev := binary.NativeEndian.AppendUint32(nil, uint32(errno))
	if _, _, err := parseStats(statsMsg(7, unix.NLMSG_ERROR, enodev), 7); !errors.Is(err, ErrGone) {
		t.Errorf("ENODEV: %v, want ErrGone", err)
	}
	short := linkWithStats(7)[:unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg+20]
	binary.NativeEndian.PutUint32(short[0:], uint32(len(short)))
	if _, _, err := parseStats(short, 7); err == nil || errors.Is(err, ErrGone) {
		t.Errorf("attribute past the end: %v", err)
	}
}

// FuzzParseStats: no datagram makes the parser of Stats panic.
func FuzzParseStats(f *testing.F) {
	f.Add(linkWithStats(1), uint32(1))
	f.Add(statsMsg(1, unix.NLMSG_ERROR, []byte{0xed, 0xff, 0xff, 0xff}), uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		parseStats(b, seq)
	})
}

package nlwire

import (
	"errors"
	"reflect"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// ConnectHandle connects every socket of h to the kernel (ConnectKernel),
// so that no process of the handle's namespace can send it a datagram: the
// library fails a request on any message not from the kernel ("Wrong
// sender portid"), which would let a root process in an observed namespace
// make netobs's requests there fail, the removal of its tc rules among
// them. vishvananda/netlink does not expose a handle's sockets, so their
// descriptors are read from its unexported field; a library version
// without that field fails here, in the tests, rather than silently.
func ConnectHandle(h *netlink.Handle) error {
	if h == nil {
		return errors.New("connect netlink handle: nil handle")
	}
	socks := reflect.ValueOf(h).Elem().FieldByName("sockets")
	if !socks.IsValid() || socks.Kind() != reflect.Map {
		return errors.New("connect netlink handle: this vishvananda/netlink has no sockets field")
	}
	if socks.Len() == 0 {
		return errors.New("connect netlink handle: the handle has no socket")
	}
	iter := socks.MapRange()
	for iter.Next() {
		v := iter.Value()
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return errors.New("connect netlink handle: unexpected socket entry")
		}
		sh := (*nl.SocketHandle)(v.UnsafePointer())
		if sh.Socket == nil {
			return errors.New("connect netlink handle: socket entry without a socket")
		}
		if err := ConnectKernel(sh.Socket.GetFd()); err != nil {
			return err
		}
	}
	return nil
}

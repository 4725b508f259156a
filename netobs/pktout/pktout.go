package pktout

import (
	"fmt"
	"time"
)

// LinkType is a pcap LINKTYPE_ value: what the bytes of a packet start with.
type LinkType uint16

const (
	// LinkEthernet: packets start with an Ethernet header (LINKTYPE_ETHERNET).
	LinkEthernet LinkType = 1
	// LinkRaw: packets start with an IPv4 or IPv6 header (LINKTYPE_RAW).
	LinkRaw LinkType = 101
	// LinkLinuxSLL: packets start with a 16-byte Linux cooked header
	// (LINKTYPE_LINUX_SLL), as for tcpdump -i any.
	LinkLinuxSLL LinkType = 113
)

func (l LinkType) String() string {
	switch l {
	case LinkEthernet:
		return "EN10MB"
	case LinkRaw:
		return "RAW"
	case LinkLinuxSLL:
		return "LINUX_SLL"
	}
	return fmt.Sprintf("LINKTYPE(%d)", uint16(l))
}

// Interface is one source of packets: an interface (or "any") in one
// namespace, or a device netobs created there. It becomes one pcapng
// interface description block.
type Interface struct {
	// ID is the interface's position in the list given to
	// NewPcapngWriter, which is also its pcapng interface ID.
	ID int
	// Name is what files and summaries call it: DEVICE@LABEL for a
	// capture (eth0@ns1, any@4026532281), the device's name for attach.
	Name string
	// Device is the interface name inside the namespace, or "any".
	Device string
	// Label names the namespace: its ip-netns name or its inode.
	Label string
	// Namespace is the kernel's name of the namespace, net:[INODE].
	Namespace string
	// Description says which namespace this is: container, inode, name,
	// PID, reference.
	Description string
	// Owner, if not nil, names the container the namespace belongs to.
	Owner    *Owner
	LinkType LinkType
	Snaplen  int
	// Filter is the filter expression, as given.
	Filter string
}

// Owner names the container (and pod) a namespace belongs to.
type Owner struct {
	Runtime      string `json:"runtime,omitempty"`
	ContainerID  string `json:"container_id,omitempty"`
	Container    string `json:"container,omitempty"`
	Pod          string `json:"pod,omitempty"`
	PodNamespace string `json:"pod_namespace,omitempty"`
}

// Describe is how interface descriptions name the owner: docker container
// "web" (ID 0123456789ab), and the pod if any: pod default/web-0.
func (o *Owner) Describe() string {
	id := o.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	s := fmt.Sprintf("%s container %q (ID %s)", o.Runtime, o.Container, id)
	if o.Pod != "" {
		s += fmt.Sprintf(", pod %s/%s", o.PodNamespace, o.Pod)
	}
	return s
}

// Packet is one packet. Its byte slices are valid only during the call
// that receives it.
type Packet struct {
	Interface *Interface
	// Time is the kernel's receive timestamp in nanoseconds since the epoch.
	Time int64
	// Length is the packet's length on the wire.
	Length int
	// Head holds bytes the source puts before Data: a Linux cooked header
	// for "any", or the start of an Ethernet frame with its VLAN tag
	// put back. Usually empty.
	Head []byte
	// Data is the packet as captured, possibly cut at the snaplen.
	Data []byte
	// Outgoing is true for packets the namespace sent.
	Outgoing bool
}

// CaptureLength is the number of bytes captured: len(Head)+len(Data).
func (p *Packet) CaptureLength() int { return len(p.Head) + len(p.Data) }

// Timestamp returns Time as a time.Time.
func (p *Packet) Timestamp() time.Time { return time.Unix(0, p.Time) }

// Stats are one interface's counters, kept in 64 bits. They go into a
// pcapng interface statistics block (PcapngWriter.WriteStats).
type Stats struct {
	// Received counts packets the source saw (tcpdump's "received by
	// filter"), dropped ones included: pcapng's isb_ifrecv.
	Received uint64
	// Dropped counts packets the kernel dropped because they were not
	// read fast enough: isb_osdrop.
	Dropped uint64
	// Captured counts packets handed on to be written: isb_usrdeliv.
	Captured uint64
}

package nsnet

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Sentinel errors, usable with errors.Is on the errors this package returns.
var (
	// ErrHostName: an address named a host instead of giving a numeric
	// address; it is not resolved (see the package documentation).
	ErrHostName = errors.New("host names are not resolved inside a namespace; give a numeric address")
	// ErrAddress: the address is malformed or does not fit the network.
	ErrAddress = errors.New("bad address")
	// ErrNetwork: the network is not one of tcp, tcp4, tcp6, udp, udp4,
	// udp6, unix, unixgram, unixpacket, or does not fit the call (udp for
	// Listen, tcp for ListenPacket).
	ErrNetwork = errors.New("unsupported network")
	// ErrNoNamespace: the namespace handle is nil.
	ErrNoNamespace = errors.New("no namespace given")
)

// Error is the error every function of this package returns: what was
// done, on which network and address, in which namespace, and why it
// failed.
type Error struct {
	Op   string // "listen" or "dial"
	Net  string // as the caller gave it
	Addr string // as the caller gave it
	NS   string // the namespace reference (nsjoin's Ref)
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s %s in %s: %v", e.Op, e.Net, e.Addr, e.NS, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the error is a timeout, as net.Error does.
func (e *Error) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

type op int

const (
	opListen op = iota + 1
	opDial
)

// kind is a socket type as this package handles it; the zero value is
// invalid on purpose.
type kind int

const (
	_ kind = iota
	kindStream
	kindDgram
	kindSeqpacket
)

// family is the address family chosen for a socket.
type family int

const (
	_ family = iota
	famInet4
	famInet6
	famUnix
)

// spec is a parsed network and address, ready to become a socket.
type spec struct {
	family family
	kind   kind
	ip     netip.Addr // without zone for inet; zone kept in zone
	zone   string     // IPv6 zone: interface name or number, resolved inside the namespace
	port   uint16
	path   string // unix: file path or "@abstract"
	// v6only is the IPV6_V6ONLY value for inet6 sockets: "tcp6" means
	// IPv6 only, "tcp" listening on the wildcard means both, like Go.
	v6only bool
	// dualFallback: "tcp"/"udp" on the wildcard may fall back to an IPv4
	// socket when the namespace has no IPv6.
	dualFallback bool
}

func (s *spec) isInet() bool { return s.family == famInet4 || s.family == famInet6 }

// parse checks network and address for op and decides the socket's
// family, type and address. It never resolves anything.
func parse(o op, network, address string) (*spec, error) {
	s := &spec{}
	var ipver byte // 0 any, '4', '6'
	switch network {
	case "tcp", "tcp4", "tcp6":
		s.kind = kindStream
	case "udp", "udp4", "udp6":
		s.kind = kindDgram
	case "unix":
		s.kind, s.family = kindStream, famUnix
	case "unixgram":
		s.kind, s.family = kindDgram, famUnix
	case "unixpacket":
		s.kind, s.family = kindSeqpacket, famUnix
	default:
		return nil, fmt.Errorf("%w %q (want tcp, tcp4, tcp6, udp, udp4, udp6, unix, unixgram or unixpacket)", ErrNetwork, network)
	}
	if s.family == famUnix {
		if address == "" || address == "@" {
			return nil, fmt.Errorf("%w: empty unix socket address (give a path or @name)", ErrAddress)
		}
		if len(address) > 107 {
			return nil, fmt.Errorf("%w: unix socket address longer than 107 bytes", ErrAddress)
		}
		s.path = address
		return s, nil
	}
	if c := network[len(network)-1]; c == '4' || c == '6' {
		ipver = c
	}
	host, portStr, err := splitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		if portStr != "" && strings.Trim(portStr, "0123456789") != "" {
			return nil, fmt.Errorf("%w: port %q is not a number (service names are not looked up)", ErrAddress, portStr)
		}
		return nil, fmt.Errorf("%w: port %q out of range 0-65535", ErrAddress, portStr)
	}
	if o == opDial && port == 0 {
		return nil, fmt.Errorf("%w: cannot connect to port 0", ErrAddress)
	}
	s.port = uint16(port)
	if host == "" {
		switch {
		case o == opDial && ipver == '6':
			s.ip, s.family = netip.IPv6Loopback(), famInet6
		case o == opDial:
			s.ip, s.family = netip.AddrFrom4([4]byte{127, 0, 0, 1}), famInet4
		case ipver == '4':
			s.ip, s.family = netip.IPv4Unspecified(), famInet4
		case ipver == '6':
			s.ip, s.family, s.v6only = netip.IPv6Unspecified(), famInet6, true
		default:
			s.ip, s.family, s.dualFallback = netip.IPv6Unspecified(), famInet6, true
		}
		return s, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if looksLikeName(host) {
			return nil, fmt.Errorf("%w (%q)", ErrHostName, host)
		}
		return nil, fmt.Errorf("%w: %q is not an IP address", ErrAddress, host)
	}
	s.zone = ip.Zone()
	ip = ip.WithZone("")
	if ip.Is4In6() && ipver != '6' {
		ip = ip.Unmap()
	}
	switch {
	case ip.Is4() && ipver == '6':
		return nil, fmt.Errorf("%w: %s is an IPv4 address, network %s wants IPv6", ErrAddress, ip, network)
	case ip.Is6() && ipver == '4':
		return nil, fmt.Errorf("%w: %s is an IPv6 address, network %s wants IPv4", ErrAddress, ip, network)
	case ip.Is4() && s.zone != "":
		return nil, fmt.Errorf("%w: an IPv4 address has no zone", ErrAddress)
	}
	s.ip = ip
	if ip.Is4() {
		s.family = famInet4
	} else {
		s.family = famInet6
		s.v6only = ipver == '6'
	}
	if o == opListen && s.kind == kindDgram && ip.IsUnspecified() && ipver == 0 && ip.Is6() {
		s.dualFallback = true
	}
	return s, nil
}

// splitHostPort is net.SplitHostPort with messages that say what to type.
func splitHostPort(address string) (host, port string, err error) {
	if address == "" {
		return "", "", fmt.Errorf("%w: empty address (want HOST:PORT, like 127.0.0.1:80 or [::1]:80)", ErrAddress)
	}
	i := strings.LastIndexByte(address, ':')
	if i < 0 {
		return "", "", fmt.Errorf("%w: %q has no port (want HOST:PORT, like 127.0.0.1:80)", ErrAddress, address)
	}
	host, port = address[:i], address[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", fmt.Errorf("%w: %q has an unclosed [", ErrAddress, address)
		}
		host = host[1 : len(host)-1]
		if !strings.Contains(host, ":") {
			return "", "", fmt.Errorf("%w: %q: brackets are for IPv6 addresses", ErrAddress, address)
		}
	} else if strings.ContainsAny(host, ":[]") {
		return "", "", fmt.Errorf("%w: %q: put an IPv6 address in brackets, like [::1]:80", ErrAddress, address)
	}
	if port == "" {
		return "", "", fmt.Errorf("%w: %q has an empty port", ErrAddress, address)
	}
	return host, port, nil
}

// looksLikeName tells a host name ("db", "api.example.com") from a
// mistyped address ("10.0.0.300", "1.2.3"), for the error message only.
func looksLikeName(h string) bool {
	if strings.Trim(h, "0123456789.") == "" {
		return false
	}
	for _, c := range h {
		if !(c == '-' || c == '.' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// CheckAddress reports whether address is one that Dial (listen false) or
// Listen and ListenPacket (listen true) accept for network, without
// creating anything: numeric, well formed and fitting the network. Use it
// to refuse bad input before serving.
func CheckAddress(network, address string, listen bool) error {
	o := opDial
	if listen {
		o = opListen
	}
	_, err := parse(o, network, address)
	return err
}

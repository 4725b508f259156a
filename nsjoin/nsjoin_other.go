//go:build !linux

package nsjoin

import (
	"fmt"
	"os"
	"runtime"
)

var errGOOS = fmt.Errorf("%w: namespaces are a Linux feature, not available on %s", ErrUnsupported, runtime.GOOS)

const NetnsRunDir = "/run/netns"

func Open(ref string) (*NS, error)             { return nil, wrap("open", ref, errGOOS) }
func OpenType(ref string, t Type) (*NS, error) { return nil, wrap("open", ref, errGOOS) }
func OpenFile(path string) (*NS, error)        { return nil, wrap("open", path, errGOOS) }
func Self(t Type) (*NS, error)                 { return nil, wrap("open", "self", errGOOS) }
func CanDo(t Type) bool                        { return false }
func (ns *NS) Do(fn func() error) error        { return wrap("do", ns.ref, errGOOS) }
func (ns *NS) Close() error                    { return nil }
func (ns *NS) Fd() int                         { return -1 }
func (ns *NS) ProcessAlive() bool              { return false }
func (ns *NS) UserNS() (*NS, error)            { return nil, wrap("owner of", ns.ref, errGOOS) }
func (ns *NS) OwnerUID() (int, error)          { return 0, wrap("owner uid of", ns.ref, errGOOS) }
func (t Type) CloneFlag() int                  { return 0 }
func Names() ([]string, error)                 { return nil, wrap("list", NetnsRunDir, errGOOS) }
func NewNamed(name string) (*NS, error)        { return nil, wrap("add", name, errGOOS) }
func NewNet() (*NS, error)                     { return nil, wrap("new", "net namespace", errGOOS) }
func DeleteNamed(name string) error            { return wrap("del", name, errGOOS) }

func NamesOf(id ID) []string                          { return nil }
func List(types ...Type) ([]Info, error)              { return nil, wrap("list", "namespaces", errGOOS) }
func Command(nss []*NS, argv ...string) (*Cmd, error) { return nil, wrap("exec", "", errGOOS) }
func Unshare(opts UnshareOptions, argv ...string) (*Cmd, error) {
	return nil, wrap("unshare", "", errGOOS)
}
func (c *Cmd) Start() error            { return wrap("exec", c.ref, errGOOS) }
func (c *Cmd) Wait() error             { return wrap("exec", c.ref, errGOOS) }
func (c *Cmd) Run() error              { return wrap("exec", c.ref, errGOOS) }
func signalOf(ps *os.ProcessState) int { return 0 }

func (ns *NS) PidFD() int           { return -1 }
func (ns *NS) Gone() (bool, string) { return false, "" }
func (ns *NS) Dup() (*NS, error)    { return nil, wrap("dup", ns.ref, errGOOS) }

func Scan(types ...Type) ([]Info, error) { return nil, wrap("scan", "namespaces", errGOOS) }
func KernelHas(t Type) bool              { return false }
func SecureExec() bool                   { return false }

func ScanUnder(root string, types ...Type) ([]Info, error) {
	return nil, wrap("scan", "namespaces", errGOOS)
}
func NamesUnder(root string) ([]string, error) { return nil, wrap("list", NetnsRunDir, errGOOS) }

func ListUnder(root string, types ...Type) ([]Info, error) {
	return nil, wrap("list", "namespaces", errGOOS)
}

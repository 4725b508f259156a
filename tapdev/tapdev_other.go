//go:build !linux

package tapdev

import (
	"errors"
	"runtime"
	"time"

	"github.com/netobs/netobs/nsjoin"
)

var errGOOS = errors.New("tapdev: TUN/TAP devices in namespaces are not supported on " + runtime.GOOS)

// Device is a TUN or TAP device in a network namespace (Linux only).
type Device struct{}

// Queue is one file descriptor of a device (Linux only).
type Queue struct{}

// Create fails on this system.
func Create(ns *nsjoin.NS, cfg Config) (*Device, error) { return nil, errGOOS }

// Cleanup fails on this system.
func Cleanup(ns *nsjoin.NS) ([]Removed, error) { return nil, errGOOS }

func (d *Device) Close() error                { return nil }
func (d *Device) Name() string                { return "" }
func (d *Device) Index() int                  { return 0 }
func (d *Device) Kind() Kind                  { return 0 }
func (d *Device) Namespace() string           { return "" }
func (d *Device) NamespaceID() nsjoin.ID      { return nsjoin.ID{} }
func (d *Device) Persistent() bool            { return false }
func (d *Device) Queues() []*Queue            { return nil }
func (d *Device) Read(b []byte) (int, error)  { return 0, errGOOS }
func (d *Device) Write(b []byte) (int, error) { return 0, errGOOS }
func (d *Device) Mirroring() string           { return "" }
func (d *Device) MirrorGone() bool            { return false }
func (d *Device) Stats() (Stats, error)       { return Stats{}, errGOOS }

func (q *Queue) Read(b []byte) (int, error)                           { return 0, errGOOS }
func (q *Queue) Write(b []byte) (int, error)                          { return 0, errGOOS }
func (q *Queue) ReadBatch(bufs [][]byte, sizes []int) (int, error)    { return 0, errGOOS }
func (q *Queue) TryReadBatch(bufs [][]byte, sizes []int) (int, error) { return 0, errGOOS }
func (q *Queue) WriteBatch(frames [][]byte) (int, error)              { return 0, errGOOS }
func (q *Queue) SetReadDeadline(t time.Time) error                    { return errGOOS }
func (q *Queue) WritesUring() bool                                    { return false }

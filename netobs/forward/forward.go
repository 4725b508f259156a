package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DialFunc connects to the target for one client.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Conn describes one finished TCP connection or UDP session, for logging.
type Conn struct {
	ID       uint64
	Client   net.Addr
	Target   net.Addr // nil if the dial failed
	Start    time.Time
	Duration time.Duration
	Up       int64 // bytes from the client to the target
	Down     int64 // bytes from the target to the client
	// Err is why it ended abnormally: the dial failed, a copy failed
	// (reset), or the target refused datagrams. Nil for a clean end.
	Err error
	// HalfCloseTimeout is true when a TCP connection was closed because,
	// after one side had ended its stream, the other sent nothing for
	// Config.HalfCloseTimeout; Err is nil then.
	HalfCloseTimeout bool
}

// Config is what both Serve functions take.
type Config struct {
	// Dial reaches the target; required.
	Dial DialFunc
	// DialTimeout bounds one dial; zero means 10 seconds.
	DialTimeout time.Duration
	// Done, if set, is called when each connection or session ends, from
	// the goroutine that served it.
	Done func(Conn)
	// UDPIdle ends a UDP session with no datagram in either direction for
	// that long; zero means 60 seconds.
	UDPIdle time.Duration
	// MaxSessions bounds the UDP session table; datagrams from new clients
	// beyond it are dropped (and counted). Zero means 1024.
	MaxSessions int
	// HalfCloseTimeout closes a TCP connection whose one direction has
	// ended (and been passed on as a half-close) when the other direction
	// carries no data for that long. Zero means 60 seconds; negative,
	// never.
	HalfCloseTimeout time.Duration
}

// DefaultHalfCloseTimeout is HalfCloseTimeout's default: like the read
// timeouts of proxies such as nginx (proxy_read_timeout), long enough for
// a service that answers a half-closed request slowly, which socat's
// 0.5 s (-t) is not, yet bounded.
const DefaultHalfCloseTimeout = 60 * time.Second

func (c *Config) halfCloseTimeout() time.Duration {
	if c.HalfCloseTimeout == 0 {
		return DefaultHalfCloseTimeout
	}
	return c.HalfCloseTimeout
}

// Stats are the totals of one Serve call.
type Stats struct {
	Conns    uint64 // TCP connections accepted or UDP sessions opened
	Failed   uint64 // of those, how many could not reach the target
	Up, Down uint64 // bytes from clients to the target and back
	Dropped  uint64 // UDP datagrams dropped (table full, send failed)
}

type stats struct {
	conns, failed, up, down, dropped atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{Conns: s.conns.Load(), Failed: s.failed.Load(), Up: s.up.Load(), Down: s.down.Load(), Dropped: s.dropped.Load()}
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return 10 * time.Second
}

func (c *Config) done(cn Conn) {
	if c.Done != nil {
		c.Done(cn)
	}
}

// ServeTCP accepts connections on ln and relays each to a connection from
// cfg.Dial, until ctx is cancelled or ln fails. It closes ln and every
// connection before returning, and returns nil after a cancellation. The
// Stats count every byte relayed, on connections still open at the end
// too.
func ServeTCP(ctx context.Context, ln net.Listener, cfg Config) (_ Stats, err error) {
	var (
		st    stats
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns = map[net.Conn]struct{}{}
		ids   atomic.Uint64
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil { // shutting down
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	untrack := func(c net.Conn) {
		mu.Lock()
		delete(conns, c)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
	})
	defer cancel()
	err = acceptLoop(ctx, ln, func(client net.Conn) {
		if !track(client) {
			client.Close()
			return
		}
		st.conns.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer untrack(client)
			cn := Conn{ID: ids.Add(1), Client: client.RemoteAddr(), Start: time.Now()}
			cn.Err = relayTCP(ctx, client, &cfg, &st, &cn, track, untrack)
			cn.Duration = time.Since(cn.Start)
			if ctx.Err() != nil && cn.Err != nil && errors.Is(cn.Err, net.ErrClosed) {
				cn.Err = nil // closed by the shutdown, not a failure
			}
			cfg.done(cn)
		}()
	})
	cancel()
	stop()
	// The totals are taken once every connection has ended, so they count
	// what connections open at the end relayed.
	wg.Wait()
	return st.snapshot(), err
}

// acceptLoop hands every connection ln accepts to serve until ctx ends
// (nil) or ln fails.
func acceptLoop(ctx context.Context, ln net.Listener, serve func(net.Conn)) error {
	var backoff time.Duration
	for {
		client, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isTemporary(err) {
				// Out of fds or similar: wait and go on serving.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				continue
			}
			return err
		}
		backoff = 0
		serve(client)
	}
}

func relayTCP(ctx context.Context, client net.Conn, cfg *Config, st *stats, cn *Conn, track func(net.Conn) bool, untrack func(net.Conn)) error {
	defer client.Close()
	dctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout())
	target, err := cfg.Dial(dctx)
	cancel()
	if err != nil {
		st.failed.Add(1)
		return err
	}
	cn.Target = target.RemoteAddr()
	if !track(target) {
		target.Close()
		return nil
	}
	defer untrack(target)
	defer target.Close()

	// The first direction to fail closes both, so the other one unblocks
	// and both peers see the connection end; its error is the one kept.
	// A direction that ends cleanly is passed on as a half-close; from
	// then on the other direction must carry data at least every
	// half-close timeout.
	var (
		once       sync.Once
		first      error
		halfClosed atomic.Bool
		timedOut   atomic.Bool
		up, down   atomic.Int64
	)
	timeout := cfg.halfCloseTimeout()
	abort := func(err error) {
		once.Do(func() {
			if errors.Is(err, os.ErrDeadlineExceeded) && halfClosed.Load() {
				timedOut.Store(true)
				err = nil
			}
			first = err
			client.Close()
			target.Close()
		})
	}
	// relay copies src to dst, then half-closes dst.
	relay := func(dst, src net.Conn, total *atomic.Uint64, n *atomic.Int64) {
		err := copyStream(dst, src, func(k int) {
			total.Add(uint64(k))
			n.Add(int64(k))
			if halfClosed.Load() && timeout > 0 {
				src.SetReadDeadline(time.Now().Add(timeout))
			}
		})
		if err == nil {
			err = closeWrite(dst)
		}
		if err != nil {
			abort(err)
			return
		}
		if !halfClosed.Swap(true) && timeout > 0 {
			// The other direction reads from dst.
			dst.SetReadDeadline(time.Now().Add(timeout))
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay(client, target, &st.down, &down)
	}()
	relay(target, client, &st.up, &up)
	<-done
	cn.Up, cn.Down = up.Load(), down.Load()
	cn.HalfCloseTimeout = timedOut.Load()
	return first
}

// closeWrite half-closes c so the far side sees the end of the stream
// while the other direction goes on.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}

// copyBuffered copies src to dst through a buffer, for connections that
// cannot splice.
func copyBuffered(dst, src net.Conn, progress func(int)) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			progress(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

package forward

import (
	"context"
	"errors"
	"io"
	"net"
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
// connection before returning, and returns nil after a cancellation.
func ServeTCP(ctx context.Context, ln net.Listener, cfg Config) (Stats, error) {
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
	defer func() {
		cancel()
		stop()
		wg.Wait()
	}()
	var backoff time.Duration
	for {
		client, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return st.snapshot(), nil
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
			return st.snapshot(), err
		}
		backoff = 0
		if !track(client) {
			client.Close()
			continue
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
	var (
		once  sync.Once
		first error
	)
	abort := func(err error) {
		once.Do(func() {
			first = err
			client.Close()
			target.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := pipe(client, target)
		st.down.Add(uint64(n))
		cn.Down = n
		if err != nil {
			abort(err)
		}
	}()
	n, err := pipe(target, client)
	st.up.Add(uint64(n))
	cn.Up = n
	if err != nil {
		abort(err)
	}
	<-done
	return first
}

// pipe copies src to dst until src ends, then half-closes dst so the far
// side sees the end of the stream while the other direction goes on.
func pipe(dst, src net.Conn) (int64, error) {
	n, err := io.Copy(dst, src)
	if err != nil {
		return n, err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			return n, err
		}
	}
	return n, nil
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

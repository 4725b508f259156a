package forward

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxDatagram is the largest UDP payload; a smaller buffer would truncate.
const maxDatagram = 65535

type session struct {
	key    string
	client net.Addr
	conn   net.Conn     // connected to the target
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
	info   Conn
	up     atomic.Int64
	down   atomic.Int64
	err    atomic.Pointer[error] // first send or receive error, for the log
}

func (s *session) touch() { s.last.Store(time.Now().UnixNano()) }

func (s *session) setErr(err error) { s.err.CompareAndSwap(nil, &err) }

// ServeUDP reads datagrams on pc and relays each client's datagrams to its
// own connection from cfg.Dial, and the replies back to the client, until
// ctx is cancelled or pc fails. It closes pc and every session before
// returning, and returns nil after a cancellation.
func ServeUDP(ctx context.Context, pc net.PacketConn, cfg Config) (Stats, error) {
	idle := cfg.UDPIdle
	if idle <= 0 {
		idle = 60 * time.Second
	}
	maxSessions := cfg.MaxSessions
	if maxSessions <= 0 {
		maxSessions = 1024
	}
	var (
		st       stats
		wg       sync.WaitGroup
		mu       sync.Mutex // guards sessions
		sessions = map[string]*session{}
		ids      atomic.Uint64
	)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, func() {
		pc.Close()
		mu.Lock()
		for _, s := range sessions {
			s.conn.Close()
		}
		sessions = nil
		mu.Unlock()
	})
	defer func() {
		cancel()
		stop()
		wg.Wait()
	}()

	end := func(s *session) {
		mu.Lock()
		if sessions != nil && sessions[s.key] == s {
			delete(sessions, s.key)
		}
		mu.Unlock()
		s.conn.Close()
		s.info.Duration = time.Since(s.info.Start)
		s.info.Up, s.info.Down = s.up.Load(), s.down.Load()
		if p := s.err.Load(); p != nil {
			s.info.Err = *p
		}
		cfg.done(s.info)
	}
	// replies copies the target's datagrams back to the client until the
	// session has been idle for the timeout or is closed.
	replies := func(s *session) {
		defer wg.Done()
		defer end(s)
		buf := make([]byte, maxDatagram)
		for {
			s.conn.SetReadDeadline(time.Unix(0, s.last.Load()).Add(idle))
			n, err := s.conn.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					if time.Since(time.Unix(0, s.last.Load())) >= idle {
						return
					}
					continue
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// ECONNREFUSED from an ICMP port unreachable: the target
				// is not there (yet); keep the session until idle.
				s.setErr(err)
				continue
			}
			s.touch()
			if _, err := pc.WriteTo(buf[:n], s.client); err != nil {
				st.dropped.Add(1)
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			s.down.Add(int64(n))
			st.down.Add(uint64(n))
		}
	}

	// lookup returns the session of client from, opening one if there is
	// none and the table has room; nil if the datagram is to be dropped.
	lookup := func(from net.Addr) *session {
		key := from.String()
		mu.Lock()
		s := sessions[key]
		full := len(sessions) >= maxSessions
		mu.Unlock()
		if s != nil {
			return s
		}
		if full {
			st.dropped.Add(1)
			return nil
		}
		st.conns.Add(1)
		info := Conn{ID: ids.Add(1), Client: from, Start: time.Now()}
		dctx, dcancel := context.WithTimeout(ctx, cfg.dialTimeout())
		conn, err := cfg.Dial(dctx)
		dcancel()
		if err != nil {
			st.failed.Add(1)
			st.dropped.Add(1)
			info.Err = err
			cfg.done(info)
			return nil
		}
		info.Target = conn.RemoteAddr()
		s = &session{key: key, client: from, conn: conn, info: info}
		s.touch()
		mu.Lock()
		if sessions == nil { // shutting down
			mu.Unlock()
			conn.Close()
			return nil
		}
		sessions[key] = s
		mu.Unlock()
		wg.Add(1)
		go replies(s)
		return s
	}

	buf := make([]byte, maxDatagram)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return st.snapshot(), nil
			}
			if isTemporary(err) {
				continue
			}
			return st.snapshot(), err
		}
		// Twice at most: a session found in the table may have just ended
		// on its idle timeout; the datagram then opens a new one.
		for attempt := 0; attempt < 2; attempt++ {
			s := lookup(from)
			if s == nil {
				break
			}
			_, err := s.conn.Write(buf[:n])
			if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
				// An ICMP port unreachable for an earlier datagram is
				// reported by this send, which it fails; once reported,
				// sending again works.
				s.setErr(err)
				_, err = s.conn.Write(buf[:n])
			}
			if errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				continue
			}
			if err != nil {
				s.setErr(err)
				st.dropped.Add(1)
				break
			}
			s.touch()
			s.up.Add(int64(n))
			st.up.Add(uint64(n))
			break
		}
	}
}

package forward

import (
	"bytes"
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

// maxPending bounds the datagrams a session holds while its dial is under
// way; more are dropped (and counted).
const maxPending = 64

// datagramBufs holds the buffers replies are read into. A session takes
// one only while a reply is in hand, so a thousand idle sessions hold
// none: memory follows the traffic, not the session count.
var datagramBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

var errSessionEnded = errors.New("session ended")

type session struct {
	key    string
	client net.Addr
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
	info   Conn
	up     atomic.Int64
	down   atomic.Int64
	err    atomic.Pointer[error] // first send or receive error, for the log

	mu      sync.Mutex // guards conn, pending, ended
	conn    net.Conn   // connected to the target; nil while dialling
	pending [][]byte   // datagrams that came while dialling, in order
	ended   bool       // the dial failed or the session was closed
}

func (s *session) touch() { s.last.Store(time.Now().UnixNano()) }

func (s *session) setErr(err error) { s.err.CompareAndSwap(nil, &err) }

// close ends the session: its connection is closed now, or as soon as
// its dial returns.
func (s *session) close() {
	s.mu.Lock()
	s.ended = true
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
}

// ServeUDP reads datagrams on pc and relays each client's datagrams to its
// own connection from cfg.Dial, and the replies back to the client, until
// ctx is cancelled or pc fails. Dials run on the session's own goroutine,
// so a slow one (a host name to look up) holds up only its own client,
// whose datagrams wait for it (up to 64). It closes pc and every session
// before returning, and returns nil after a cancellation.
func ServeUDP(ctx context.Context, pc net.PacketConn, cfg Config) (_ Stats, err error) {
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
			s.close()
		}
		sessions = nil
		mu.Unlock()
	})
	defer cancel()

	end := func(s *session) {
		mu.Lock()
		if sessions != nil && sessions[s.key] == s {
			delete(sessions, s.key)
		}
		mu.Unlock()
		s.close()
		s.info.Duration = time.Since(s.info.Start)
		s.info.Up, s.info.Down = s.up.Load(), s.down.Load()
		if p := s.err.Load(); p != nil {
			s.info.Err = *p
		}
		cfg.done(s.info)
	}

	// send writes one client datagram to the target.
	send := func(s *session, conn net.Conn, b []byte) error {
		_, err := conn.Write(b)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			// An ICMP port unreachable for an earlier datagram is
			// reported by this send, which it fails; once reported,
			// sending again works.
			s.setErr(err)
			_, err = conn.Write(b)
		}
		if err != nil {
			return err
		}
		s.touch()
		s.up.Add(int64(len(b)))
		st.up.Add(uint64(len(b)))
		return nil
	}

	// run dials the target, sends what came meanwhile, then copies the
	// target's datagrams back to the client until the session has been
	// idle for the timeout or is closed.
	run := func(s *session) {
		defer wg.Done()
		defer end(s)
		dctx, dcancel := context.WithTimeout(ctx, cfg.dialTimeout())
		conn, err := cfg.Dial(dctx)
		dcancel()
		s.mu.Lock()
		if err != nil || s.ended {
			s.ended = true
			st.dropped.Add(uint64(len(s.pending)))
			s.pending = nil
			s.mu.Unlock()
			if err != nil {
				st.failed.Add(1)
				s.setErr(err)
			} else {
				conn.Close()
			}
			return
		}
		s.info.Target = conn.RemoteAddr()
		for _, b := range s.pending {
			if err := send(s, conn, b); err != nil {
				s.setErr(err)
				st.dropped.Add(1)
			}
		}
		s.pending, s.conn = nil, conn
		s.mu.Unlock()
		replies(s, conn, pc, idle, &st)
	}

	// lookup returns the session of client from, opening one if there is
	// none and the table has room; nil if the datagram is to be dropped.
	lookup := func(from net.Addr) *session {
		key := from.String()
		mu.Lock()
		defer mu.Unlock()
		if sessions == nil { // shutting down
			return nil
		}
		if s := sessions[key]; s != nil {
			return s
		}
		if len(sessions) >= maxSessions {
			st.dropped.Add(1)
			return nil
		}
		st.conns.Add(1)
		s := &session{key: key, client: from, info: Conn{ID: ids.Add(1), Client: from, Start: time.Now()}}
		s.touch()
		sessions[key] = s
		wg.Add(1)
		go run(s)
		return s
	}

	// forward hands one datagram to session s: queued while it dials.
	forward := func(s *session, b []byte) error {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			return errSessionEnded
		}
		conn := s.conn
		if conn == nil {
			if len(s.pending) >= maxPending {
				s.mu.Unlock()
				st.dropped.Add(1)
				return nil
			}
			s.pending = append(s.pending, bytes.Clone(b))
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		err := send(s, conn, b)
		if errors.Is(err, net.ErrClosed) {
			return errSessionEnded
		}
		if err != nil {
			s.setErr(err)
			st.dropped.Add(1)
		}
		return nil
	}

	buf := make([]byte, maxDatagram)
	for {
		n, from, rerr := pc.ReadFrom(buf)
		if rerr != nil {
			if ctx.Err() != nil {
				break
			}
			if isTemporary(rerr) {
				continue
			}
			err = rerr
			break
		}
		// Twice at most: a session found in the table may have just ended
		// on its idle timeout; the datagram then opens a new one.
		for attempt := 0; ; attempt++ {
			s := lookup(from)
			if s == nil {
				break
			}
			if forward(s, buf[:n]) != errSessionEnded {
				break
			}
			if attempt == 1 || ctx.Err() != nil {
				st.dropped.Add(1)
				break
			}
		}
	}
	cancel()
	stop()
	wg.Wait() // every session ended: the totals are final
	return st.snapshot(), err
}

// replies copies the target's datagrams on conn back to s.client through
// pc until s has been idle for idle or conn is closed. Where conn exposes
// its descriptor, each reply is read into a pooled buffer taken only once
// the socket is readable.
func replies(s *session, conn net.Conn, pc net.PacketConn, idle time.Duration, st *stats) {
	var read func() ([]byte, func(), error)
	if sc, ok := conn.(syscall.Conn); ok {
		rc, err := sc.SyscallConn()
		if err != nil {
			s.setErr(err)
			return
		}
		read = func() ([]byte, func(), error) {
			var (
				bp   *[]byte
				n    int
				rerr error
			)
			err := rc.Read(func(fd uintptr) bool {
				bp = datagramBufs.Get().(*[]byte)
				for {
					n, rerr = syscall.Read(int(fd), *bp)
					if rerr != syscall.EINTR {
						break
					}
				}
				if rerr == syscall.EAGAIN {
					datagramBufs.Put(bp)
					bp = nil
					return false
				}
				return true
			})
			if err == nil && rerr != nil {
				err = os.NewSyscallError("read", rerr)
			}
			if err != nil {
				if bp != nil {
					datagramBufs.Put(bp)
				}
				return nil, nil, err
			}
			return (*bp)[:max(n, 0)], func() { datagramBufs.Put(bp) }, nil
		}
	} else {
		buf := make([]byte, maxDatagram)
		read = func() ([]byte, func(), error) {
			n, err := conn.Read(buf)
			return buf[:n], func() {}, err
		}
	}
	for {
		conn.SetReadDeadline(time.Unix(0, s.last.Load()).Add(idle))
		b, release, err := read()
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
		_, err = pc.WriteTo(b, s.client)
		release()
		if err != nil {
			st.dropped.Add(1)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.down.Add(int64(len(b)))
		st.down.Add(uint64(len(b)))
	}
}

package agent

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
)

// Events implements agentpb.AgentServer. Events are read from the watcher
// as fast as they come and queued (at most eventQueue); a client that
// reads more slowly loses events, counted in the final message's
// agent_dropped, instead of holding the watcher's kernel sockets full.
func (s *Server) Events(req *agentpb.EventsRequest, stream agentpb.Agent_EventsServer) error {
	ctx := stream.Context()
	kinds := events.KindsAll
	if req.Kinds != "" {
		var err error
		if kinds, err = events.ParseKinds(req.Kinds); err != nil {
			return s.statusOf(ctx, err)
		}
	}
	if req.All && len(req.Nsrefs) > 0 {
		return s.statusOf(ctx, usageErr{errors.New("--all watches every namespace; give it no NSREF")})
	}
	refs := req.Nsrefs
	if !req.All && len(refs) == 0 {
		refs = []string{"self"}
	}
	rescan := time.Duration(req.Rescan)
	if rescan == 0 {
		rescan = time.Second
	}
	var nt notices
	var nss []*nsjoin.NS
	defer func() {
		for _, ns := range nss {
			ns.Close()
		}
	}()
	owners := map[[2]uint64]*runtime.Container{}
	for _, ref := range refs {
		ns, ctr, err := s.cfg.Backend.OpenNetNS(ctx, ref, &nt)
		if err != nil {
			return s.statusOf(ctx, err)
		}
		nss = append(nss, ns)
		if ctr != nil {
			owners[[2]uint64{ns.ID().Dev, ns.ID().Inode}] = ctr
		}
	}
	// Stop ends the watch but not the stream, which goes on to Final.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	id, forget := s.register(stopRun)
	defer forget()
	w, err := events.New(runCtx, nss, events.Options{Kinds: kinds, Initial: req.Initial, All: req.All, Rescan: rescan})
	if err != nil {
		return s.statusOf(ctx, err)
	}
	defer w.Close()
	for _, l := range nt.take() {
		if err := stream.Send(&agentpb.EventsMessage{Msg: &agentpb.EventsMessage_Notice{Notice: &agentpb.Notice{Text: l}}}); err != nil {
			return err
		}
	}

	q := make(chan *agentpb.EventsMessage, eventQueue)
	var dropped, printed, initial atomic.Uint64
	sendErr := make(chan error, 1)
	go func() {
		for m := range q {
			if err := stream.Send(m); err != nil {
				sendErr <- err
				w.Close()
				for range q {
				}
				return
			}
		}
		sendErr <- nil
	}()
	ready := w.Ready()
	ch := w.Events()
	for ch != nil {
		select {
		case <-ready:
			ready = nil
			q <- &agentpb.EventsMessage{Msg: &agentpb.EventsMessage_Ready{Ready: &agentpb.EventsReady{
				Namespaces: int64(w.Stats().Namespaces), Kinds: kinds.String(), Id: id}}}
			continue
		case ev, ok := <-ch:
			if !ok {
				ch = nil
				continue
			}
			if c := owners[[2]uint64{ev.NS.Dev, ev.NS.Inode}]; c != nil {
				ev.NS.Label, ev.NS.Owner = c.Label(), ownerOf(c)
			}
			select {
			case q <- &agentpb.EventsMessage{Msg: &agentpb.EventsMessage_Event{Event: eventToPB(&ev)}}:
				if ev.Action == events.Initial {
					initial.Add(1)
				}
				n := printed.Add(1) - initial.Load()
				if req.Count > 0 && n >= req.Count {
					w.Close()
				}
			default:
				dropped.Add(1)
			}
		}
	}
	st := w.Stats()
	final := &agentpb.EventsFinal{Events: printed.Load(), Initial: initial.Load(), Resyncs: st.Resyncs, Forged: st.Forged, AgentDropped: dropped.Load()}
	if err := w.Err(); err != nil && !errors.Is(err, events.ErrClosed) {
		final.Error = err.Error()
	}
	q <- &agentpb.EventsMessage{Msg: &agentpb.EventsMessage_Final{Final: final}}
	close(q)
	return <-sendErr
}

// usageErr marks a request the command line would refuse as a usage
// mistake.
type usageErr struct{ error }

func (e usageErr) Unwrap() error { return e.error }

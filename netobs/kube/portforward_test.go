package kube

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	streamhttp "k8s.io/streaming/pkg/httpstream"
	streamspdy "k8s.io/streaming/pkg/httpstream/spdy"
)

// apiServer is a stand-in for the API server's pods/portforward endpoint,
// speaking the real SPDY port-forward protocol (the kubelet's side of it,
// from k8s.io/streaming): it forwards port 7447 of pod netobs/agent to
// backend, answers other ports on the error stream as the kubelet does,
// refuses pod netobs/secret with RBAC's 403 Status, and declines
// WebSocket upgrades as an API server older than 1.31 does.
type apiServer struct {
	backend  string
	ssarSeen bool
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
		var r authorizationv1.SelfSubjectAccessReview
		// client-go sends protobuf; the deserializer reads either.
		body, _ := io.ReadAll(req.Body)
		if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, &r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.ssarSeen = true
		a := r.Spec.ResourceAttributes
		r.Status.Allowed = !(a != nil && a.Name == "secret" && a.Subresource == "portforward" && a.Verb == "create")
		r.APIVersion, r.Kind = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(&r)
	case req.URL.Path == "/api/v1/namespaces/netobs/pods/secret/portforward":
		st := apierrors.NewForbidden(corev1.Resource("pods"), "secret",
			errors.New(`User "alice" cannot create resource "pods/portforward" in API group "" in the namespace "netobs"`)).ErrStatus
		st.APIVersion, st.Kind = "v1", "Status"
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(&st)
	case req.URL.Path == "/api/v1/namespaces/netobs/pods/agent/portforward" && req.Method == http.MethodPost:
		s.forward(w, req)
	default:
		http.Error(w, "not here", http.StatusBadRequest)
	}
}

func (s *apiServer) forward(w http.ResponseWriter, req *http.Request) {
	if _, err := streamhttp.Handshake(req, w, []string{"portforward.k8s.io"}); err != nil {
		return
	}
	streams := make(chan streamhttp.Stream, 2)
	conn := streamspdy.NewResponseUpgrader().UpgradeResponse(w, req, func(st streamhttp.Stream, _ <-chan struct{}) error {
		streams <- st
		return nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	var errS, dataS streamhttp.Stream
	for errS == nil || dataS == nil {
		select {
		case st := <-streams:
			if st.Headers().Get(corev1.StreamType) == corev1.StreamTypeError {
				errS = st
			} else {
				dataS = st
			}
		case <-conn.CloseChan():
			return
		}
	}
	if p := dataS.Headers().Get(corev1.PortHeader); p != "7447" {
		io.WriteString(errS, "an error occurred forwarding "+p+" -> "+p+": connection refused")
		errS.Close()
		dataS.Close()
		<-conn.CloseChan()
		return
	}
	b, err := net.Dial("tcp", s.backend)
	if err != nil {
		return
	}
	defer b.Close()
	go io.Copy(b, dataS)
	io.Copy(dataS, b)
}

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func forwarder(t *testing.T, spdyOnly bool) (*PortForwarder, *apiServer) {
	t.Helper()
	as := &apiServer{backend: echoServer(t)}
	srv := httptest.NewServer(as)
	t.Cleanup(srv.Close)
	cfg := &rest.Config{Host: srv.URL}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &PortForwarder{Config: cfg, Client: cs, SPDYOnly: spdyOnly}, as
}

// TestPortForward goes through client-go's WebSocket attempt, its
// fallback to SPDY, and the port-forward streams to an echo service.
func TestPortForward(t *testing.T) {
	for _, spdyOnly := range []bool{false, true} {
		f, _ := forwarder(t, spdyOnly)
		c, err := f.DialPod(context.Background(), "netobs", "agent", AgentPort)
		if err != nil {
			t.Fatalf("SPDYOnly=%v: %v", spdyOnly, err)
		}
		msg := strings.Repeat("netobs ", 10000)
		go c.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("SPDYOnly=%v: echo through port-forward: %v", spdyOnly, err)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		c.Close() // idempotent
	}
}

func TestPortForwardNothingListening(t *testing.T) {
	f, _ := forwarder(t, true)
	c, err := f.DialPod(context.Background(), "netobs", "agent", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Read(make([]byte, 1))
	var re *RemoteError
	if !errors.As(err, &re) || re.Port != 1 || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("read = %v, want *RemoteError for port 1", err)
	}
}

func TestPortForwardForbidden(t *testing.T) {
	// Over WebSockets the server's Status comes back; over SPDY only text,
	// so the authorizer is asked.
	for _, spdyOnly := range []bool{false, true} {
		f, as := forwarder(t, spdyOnly)
		_, err := f.DialPod(context.Background(), "netobs", "secret", AgentPort)
		var fe *ForbiddenError
		if !errors.As(err, &fe) || fe.Verb != "create" || fe.Resource != "pods" || fe.Subresource != "portforward" || fe.Namespace != "netobs" {
			t.Fatalf("SPDYOnly=%v: err = %v, want *ForbiddenError create pods/portforward in netobs", spdyOnly, err)
		}
		if !strings.Contains(err.Error(), "create pods/portforward") {
			t.Errorf("message %q does not name create pods/portforward", err)
		}
		if as.ssarSeen != spdyOnly {
			t.Errorf("SPDYOnly=%v: SelfSubjectAccessReview asked = %v", spdyOnly, as.ssarSeen)
		}
	}
}

func TestPortForwardCancelled(t *testing.T) {
	f, _ := forwarder(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.DialPod(ctx, "netobs", "agent", AgentPort); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled dial: err = %v, want context.Canceled", err)
	}
}

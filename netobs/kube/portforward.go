package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netobs/netobs/internal/termsafe"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// PortForwarder opens streams to pod ports through the API server's
// pods/portforward subresource: over WebSockets (tunnelling the SPDY
// port-forward protocol) where the server supports it, else over SPDY, the
// way kubectl port-forward does. Unlike kubectl it opens no local listener:
// each DialPod is one port-forward connection carrying one stream.
type PortForwarder struct {
	Config *rest.Config
	Client kubernetes.Interface
	// SPDYOnly disables the WebSocket attempt (for API servers and proxies
	// that mishandle it).
	SPDYOnly bool
	reqID    atomic.Int64
}

var _ PodDialer = (*PortForwarder)(nil)

// DialPod connects to port of pod namespace/name. A refusal by RBAC is a
// *ForbiddenError for create on pods/portforward.
func (f *PortForwarder) DialPod(ctx context.Context, namespace, name string, port int) (net.Conn, error) {
	u := f.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(name).SubResource("portforward").URL()
	type dialed struct {
		conn httpstream.Connection
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		c, err := f.dial(u)
		ch <- dialed{c, err}
	}()
	var d dialed
	select {
	case d = <-ch:
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.conn != nil {
				d.conn.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", namespace, name, context.Cause(ctx))
	}
	if d.err != nil {
		return nil, f.dialError(ctx, d.err, namespace, name)
	}
	c, err := openStream(d.conn, port, f.reqID.Add(1))
	if err != nil {
		d.conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", namespace, name, port, err)
	}
	return c, nil
}

// dial upgrades a port-forward request at u: WebSockets first unless
// SPDYOnly, then SPDY if the WebSocket upgrade failed for a reason other
// than the API server refusing the request (RBAC, no such pod), which SPDY
// would only repeat with a less precise error.
func (f *PortForwarder) dial(u *url.URL) (httpstream.Connection, error) {
	if !f.SPDYOnly {
		ws, err := portforward.NewSPDYOverWebsocketDialer(u, f.Config)
		if err != nil {
			return nil, err
		}
		c, _, err := ws.Dial(portforward.PortForwardProtocolV1Name)
		// client-go's WebSocket dialer returns k8s.io/streaming's upgrade
		// error, its SPDY side apimachinery's: either means "try SPDY".
		upgradeFailed := httpstream.IsUpgradeFailure(err) || streamhttp.IsUpgradeFailure(err) ||
			httpstream.IsHTTPSProxyError(err) || streamhttp.IsHTTPSProxyError(err)
		if err == nil || !upgradeFailed || refused(err) {
			return c, err
		}
	}
	transport, upgrader, err := spdy.RoundTripperFor(f.Config)
	if err != nil {
		return nil, err
	}
	c, _, err := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u).Dial(portforward.PortForwardProtocolV1Name)
	return c, err
}

// refused tells whether err carries the API server's answer that the
// request is not allowed or its pod does not exist. The upgrade errors of
// client-go's dialers hold that answer as a Cause they do not unwrap.
func refused(err error) bool {
	if c := upgradeCause(err); c != nil {
		err = c
	}
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsNotFound(err)
}

// upgradeCause is the Cause of an upgrade failure, or nil.
func upgradeCause(err error) error {
	var s *streamhttp.UpgradeFailureError
	if errors.As(err, &s) {
		return s.Cause
	}
	var a *httpstream.UpgradeFailureError
	if errors.As(err, &a) {
		return a.Cause
	}
	return nil
}

// dialError types a failed port-forward upgrade. The WebSocket path hands
// back the server's Status; SPDY's upgrade error carries only its text, so
// there the authorizer is asked directly (a SelfSubjectAccessReview, which
// every authenticated user may create) whether create on pods/portforward
// is allowed, instead of reading the message.
func (f *PortForwarder) dialError(ctx context.Context, err error, namespace, name string) error {
	if refused(err) {
		if c := upgradeCause(err); c != nil {
			err = c
		}
		return apiError(err, "create", "pods", "portforward", "pod", namespace, name)
	}
	ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: "create", Resource: "pods", Subresource: "portforward", Name: name,
		},
	}}
	if r, rerr := f.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{}); rerr == nil && !r.Status.Allowed {
		return &ForbiddenError{Verb: "create", Resource: "pods", Subresource: "portforward", Namespace: namespace, Name: name, Err: err}
	}
	return fmt.Errorf("port-forward to pod %s/%s: %w", namespace, name, err)
}

// openStream creates the error and data streams of one forwarded
// connection, as the port-forward protocol wants them.
func openStream(conn httpstream.Connection, port int, id int64) (*streamConn, error) {
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, strconv.FormatInt(id, 10))
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return nil, fmt.Errorf("create error stream: %w", err)
	}
	// Nothing is written to the error stream.
	errStream.Close()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		return nil, fmt.Errorf("create data stream: %w", err)
	}
	c := &streamConn{conn: conn, data: data, port: port, remoteErr: make(chan struct{})}
	go func() {
		// The kubelet writes here why forwarding failed (nothing listens
		// on the port, ...); a Read on the data stream then ends.
		msg, _ := io.ReadAll(errStream)
		if len(msg) > 0 {
			c.mu.Lock()
			c.remote = &RemoteError{Port: port, Msg: string(msg)}
			c.mu.Unlock()
		}
		close(c.remoteErr)
	}()
	return c, nil
}

// RemoteError is what the node said when forwarding to the agent's port
// failed (for example: nothing listens there).
type RemoteError struct {
	Port int
	Msg  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("forwarding to port %d failed on the node: %s", e.Port, termsafe.Escape(strings.TrimSpace(e.Msg)))
}

// streamConn is a net.Conn over one port-forward data stream. Close
// closes the whole port-forward connection. Deadlines are not supported
// (port-forward streams have none); they return an error.
type streamConn struct {
	conn      httpstream.Connection
	data      httpstream.Stream
	port      int
	closeOnce sync.Once
	remoteErr chan struct{}
	mu        sync.Mutex
	remote    error // guarded by mu
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.data.Read(p)
	if err != nil {
		if rerr := c.remoteError(); rerr != nil {
			return n, rerr
		}
	}
	return n, err
}

// remoteError waits briefly for the error stream after the data stream
// ended, so that a refused connection reports the node's reason rather
// than a bare EOF.
func (c *streamConn) remoteError() error {
	select {
	case <-c.remoteErr:
	case <-time.After(time.Second):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remote
}

func (c *streamConn) Write(p []byte) (int, error) { return c.data.Write(p) }

func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.data.Reset()
		c.conn.Close()
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return pfAddr("local") }
func (c *streamConn) RemoteAddr() net.Addr { return pfAddr("port-forward:" + strconv.Itoa(c.port)) }

// ErrNoDeadline is returned by the deadline methods of port-forward
// connections.
var ErrNoDeadline = errors.New("port-forward streams have no deadlines")

func (c *streamConn) SetDeadline(t time.Time) error      { return ErrNoDeadline }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return ErrNoDeadline }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return ErrNoDeadline }

type pfAddr string

func (a pfAddr) Network() string { return "port-forward" }
func (a pfAddr) String() string  { return string(a) }

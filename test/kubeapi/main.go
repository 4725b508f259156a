// Command kubeapi runs a real Kubernetes API server for netobs's tests: an
// embedded etcd and kube-apiserver (k8s.io/kubernetes's own command, in
// this process), both on loopback ports, with everything they keep under
// one directory.
//
// Usage: kubeapi DIR
//
// It writes into DIR the etcd data, the certificates (a CA of its own, the
// server's certificate for 127.0.0.1 and the service-account key) and
// three kubeconfigs, each naming the server by 127.0.0.1 and trusting the
// CA:
//
//   - admin.kubeconfig: user "netobs-admin" in group system:masters
//     (allowed everything);
//   - user.kubeconfig: user "netobs-user" in group "netobs:users", the
//     group deploy/kubernetes/rbac-user.yaml binds (no rights until that
//     is applied);
//   - nobody.kubeconfig: user "netobs-nobody", in no group (no rights but
//     discovery and self reviews).
//
// It prints "ready" on stdout once /readyz answers ok, and on SIGTERM or
// SIGINT stops the API server, then etcd, and exits 0. Authorization is
// RBAC only; ServiceAccount admission is off (no controller-manager makes
// the default service accounts) and so is the endpoint reconciler (the
// server advertises 127.0.0.1, which a Service endpoint may not be). No
// kubelet, scheduler or controller runs: the tests create what those
// would.
//
// It is its own Go module (test/kubeapi/go.mod) so that k8s.io/kubernetes
// stays out of netobs's dependencies; `make kubeapi` builds bin/kubeapi.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

type user struct{ file, name, group, token string }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kubeapi DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "kubeapi: "+err.Error())
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The command sets up its SIGTERM/SIGINT handling when it is made:
	// make it first, so that a signal during etcd's start stops both.
	cmd := app.NewAPIServerCommand()

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcd, err := startEtcd(filepath.Join(dir, "etcd"), ports[0], ports[1])
	if err != nil {
		return err
	}
	defer func() {
		etcd.Close()
		<-etcd.Server.StopNotify()
	}()

	pki, err := makePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return err
	}
	users := []user{
		{"admin.kubeconfig", "netobs-admin", "system:masters", randToken()},
		{"user.kubeconfig", "netobs-user", "netobs:users", randToken()},
		{"nobody.kubeconfig", "netobs-nobody", "", randToken()},
	}
	tokens := ""
	for _, u := range users {
		tokens += fmt.Sprintf("%s,%s,%s", u.token, u.name, u.name)
		if u.group != "" {
			tokens += fmt.Sprintf(",%q", u.group)
		}
		tokens += "\n"
	}
	tokenFile := filepath.Join(dir, "pki", "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return err
	}
	server := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	for _, u := range users {
		if err := writeKubeconfig(filepath.Join(dir, u.file), server, pki.caPEM, u); err != nil {
			return err
		}
	}

	cmd.SetArgs([]string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(ports[0]),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[2]),
		"--cert-dir=" + filepath.Join(dir, "pki"),
		"--tls-cert-file=" + pki.certFile,
		"--tls-private-key-file=" + pki.keyFile,
		"--token-auth-file=" + tokenFile,
		"--anonymous-auth=false",
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pki.saKeyFile,
		"--service-account-signing-key-file=" + pki.saKeyFile,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	})
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	ready := make(chan struct{})
	go waitReady(server, pki.caPEM, users[0].token, ready, done)
	select {
	case <-ready:
		fmt.Println("ready")
	case err := <-done:
		if err == nil {
			err = errors.New("kube-apiserver stopped before it was ready")
		}
		return err
	}
	return <-done
}

// waitReady closes ready once the server's /readyz answers 200; it gives
// up when the server has stopped (stopped is then refilled).
func waitReady(server string, caPEM []byte, token string, ready chan<- struct{}, stopped chan error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for {
		select {
		case err := <-stopped:
			stopped <- err
			return
		case <-time.After(200 * time.Millisecond):
		}
		req, _ := http.NewRequest("GET", server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			close(ready)
			return
		}
	}
}

func startEtcd(dir string, clientPort, peerPort int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cu := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(clientPort)}
	pu := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd: %w", err)
	case <-time.After(time.Minute):
		e.Close()
		return nil, errors.New("etcd: not ready after a minute")
	}
}

// freePorts finds n distinct free loopback ports (held open together so
// they differ; another process could take one before it is used, which a
// test then sees as a failed start).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

type pki struct {
	caPEM                        []byte
	certFile, keyFile, saKeyFile string
}

// makePKI makes a CA, a serving certificate for 127.0.0.1 and localhost
// signed by it, and the service-account signing key, under dir.
func makePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netobs-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	p := &pki{
		caPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certFile:  filepath.Join(dir, "serving.crt"),
		keyFile:   filepath.Join(dir, "serving.key"),
		saKeyFile: filepath.Join(dir, "sa.key"),
	}
	if err := writePEM(p.certFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writeKey(p.keyFile, key); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return p, writeKey(p.saKeyFile, saKey)
}

func writeKey(name string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return writePEM(name, "EC PRIVATE KEY", der)
}

func writePEM(name, typ string, der []byte) error {
	return os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func randToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeKubeconfig(name, server string, caPEM []byte, u user) error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubeapi
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: %s
  context:
    cluster: kubeapi
    user: %s
current-context: %s
`, server, base64.StdEncoding.EncodeToString(caPEM), u.name, u.token, u.name, u.name, u.name)
	return os.WriteFile(name, []byte(kc), 0o600)
}

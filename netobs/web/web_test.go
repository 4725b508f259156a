package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target, host, auth string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.Host = host
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestChecks: the Host check without a token, the token with one, GET
// only, the token required off loopback, the headers that keep the page
// from running anything but its own script.
func TestChecks(t *testing.T) {
	if _, err := New(Options{Addr: "0.0.0.0:7070"}); !errors.Is(err, ErrTokenRequired) {
		t.Errorf("0.0.0.0 without a token: %v, want ErrTokenRequired", err)
	}
	s, err := New(Options{Addr: "127.0.0.1:7070"})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	for _, c := range []struct {
		method, host string
		code         int
	}{
		{"GET", "127.0.0.1:7070", 200},
		{"GET", "localhost:7070", 200},
		{"GET", "[::1]:7070", 200},
		{"GET", "rebound.example:7070", http.StatusMisdirectedRequest},
		{"GET", "127.0.0.1:7071", http.StatusMisdirectedRequest},
		{"POST", "127.0.0.1:7070", http.StatusMethodNotAllowed},
		{"DELETE", "127.0.0.1:7070", http.StatusMethodNotAllowed},
	} {
		w := get(t, h, c.method, "/", c.host, "")
		if w.Code != c.code {
			t.Errorf("%s Host %s: %d, want %d", c.method, c.host, w.Code, c.code)
		}
	}
	// A capture is a POST: refused from another site's page before it
	// reaches the handler.
	r := httptest.NewRequest("POST", "/api/capture?ns=net:[1]&iface=lo", nil)
	r.Host = "127.0.0.1:7070"
	r.Header.Set("Origin", "http://evil.example")
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, r)
	if rw.Code != http.StatusForbidden {
		t.Errorf("cross-origin POST /api/capture: %d, want 403", rw.Code)
	}
	w := get(t, h, "GET", "/", "127.0.0.1:7070", "")
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if !strings.Contains(w.Body.String(), `<script src="app.js"`) || strings.Contains(w.Body.String(), "<script>") {
		t.Errorf("index.html must load app.js and have no inline script:\n%s", w.Body.String())
	}
	js := get(t, h, "GET", "/app.js", "127.0.0.1:7070", "").Body.String()
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "insertAdjacentHTML") || strings.Contains(js, "eval(") {
		t.Errorf("app.js parses strings as HTML or code")
	}

	s, err = New(Options{Addr: "0.0.0.0:7070", Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	h = s.Handler()
	for _, c := range []struct {
		target, auth string
		code         int
	}{
		{"/", "", http.StatusUnauthorized},
		{"/?token=wrong", "", http.StatusUnauthorized},
		{"/?token=s3cret", "", 200},
		{"/", "Bearer s3cret", 200},
		{"/", "Bearer s3cretx", http.StatusUnauthorized},
		{"/api/topology", "", http.StatusUnauthorized},
	} {
		if w := get(t, h, "GET", c.target, "192.0.2.1:7070", c.auth); w.Code != c.code {
			t.Errorf("GET %s (%q): %d, want %d", c.target, c.auth, w.Code, c.code)
		}
	}
}

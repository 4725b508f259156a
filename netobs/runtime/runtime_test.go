package runtime

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
		err  error
	}{
		{"docker:web", Ref{Runtime: "docker", Key: "web"}, nil},
		{"docker:/web", Ref{Runtime: "docker", Key: "web"}, nil},
		{"podman:0eab12", Ref{Runtime: "podman", Key: "0eab12"}, nil},
		{"container:0eab", Ref{Runtime: "", Key: "0eab"}, nil},
		{"container:my_app-1.2", Ref{Runtime: "", Key: "my_app-1.2"}, nil},
		{"docker:", Ref{}, ErrBadRef},
		{"container:", Ref{}, ErrBadRef},
		{"docker:a/b", Ref{}, ErrBadRef},
		{"docker:a b", Ref{}, ErrBadRef},
		{"docker:a\x1b[31m", Ref{}, ErrBadRef},
		{"docker:é", Ref{}, ErrBadRef},
		{"docker:" + strings.Repeat("a", 256), Ref{}, ErrBadRef},
		{"lxc:web", Ref{}, ErrBadRef},
		{"web", Ref{}, ErrBadRef},
		{"cri:0eab", Ref{Runtime: "cri", Key: "0eab"}, nil},
		{"pod:web", Ref{Runtime: "cri", Pod: true, Key: "web"}, nil},
		{"pod:default/web-0", Ref{Runtime: "cri", Pod: true, Namespace: "default", Key: "web-0"}, nil},
		{"pod:default/web-*", Ref{Runtime: "cri", Pod: true, Namespace: "default", Key: "web-*"}, nil},
		{"pod:", Ref{}, ErrBadRef},
		{"pod:a/", Ref{}, ErrBadRef},
		{"pod:/a", Ref{}, ErrBadRef},
		{"pod:a/b/c", Ref{}, ErrBadRef},
		{"pod:a[", Ref{}, ErrBadRef},
		{"pod:a\x1b", Ref{}, ErrBadRef},
		{"pod:" + strings.Repeat("a", 400), Ref{}, ErrBadRef},
		{"containerd:0eab", Ref{Runtime: "containerd", Namespace: "default", Key: "0eab"}, nil},
		{"containerd:k8s.io/0eab", Ref{Runtime: "containerd", Namespace: "k8s.io", Key: "0eab"}, nil},
		{"containerd:default/my-web_1", Ref{Runtime: "containerd", Namespace: "default", Key: "my-web_1"}, nil},
		{"containerd:", Ref{}, ErrBadRef},
		{"containerd:a/", Ref{}, ErrBadRef},
		{"containerd:/x", Ref{}, ErrBadRef},
		{"containerd:a/b/c", Ref{}, ErrBadRef},
		{"containerd:a b/x", Ref{}, ErrBadRef},
		{"containerd:k8s.io/x\x1b[31m", Ref{}, ErrBadRef},
		{"containerd:" + strings.Repeat("n", 77) + "/x", Ref{}, ErrBadRef},
		{"containerd:" + strings.Repeat("a", 256), Ref{}, ErrBadRef},
	} {
		got, err := ParseRef(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n\x1b") {
			t.Errorf("ParseRef(%q) error %q is not one clean line", tc.in, err)
		}
	}
	for in, want := range map[string]bool{"docker:x": true, "podman:": true, "container:1": true, "lxc:x": false, "web": false, "/run/netns/docker:x": false, "pod:x": true, "cri:x": true, "containerd:x": true, "containerd": false, "1234": false} {
		if IsRef(in) != want {
			t.Errorf("IsRef(%q) = %v, want %v", in, !want, want)
		}
	}
}

func TestMatch(t *testing.T) {
	cs := []Container{
		{Runtime: "docker", ID: "abc111", Name: "web"},
		{Runtime: "docker", ID: "abc222", Name: "db"},
		{Runtime: "podman", ID: "def333", Name: "web"},
		{Runtime: "podman", ID: "abc", Name: "abc2"},
	}
	for _, tc := range []struct {
		key, want string
		err       error
		n         int
	}{
		{key: "abc111", want: "abc111"},
		{key: "abc", want: "abc"},   // a full ID before names and prefixes
		{key: "db", want: "abc222"}, // a name
		{key: "abc2", want: "abc"},  // a name before a prefix
		{key: "abc1", want: "abc111"},
		{key: "d", want: "def333"},
		{key: "ab", err: ErrAmbiguous, n: 3},
		{key: "web", err: ErrAmbiguous, n: 2},
		{key: "xyz", err: ErrNotFound},
	} {
		c, err := match("container:"+tc.key, tc.key, cs)
		if !errors.Is(err, tc.err) || (tc.err == nil && c.ID != tc.want) {
			t.Errorf("match %q = %q, %v; want %q, %v", tc.key, c.ID, err, tc.want, tc.err)
			continue
		}
		var amb *AmbiguousError
		if errors.As(err, &amb) {
			if len(amb.Matches) != tc.n {
				t.Errorf("match %q: %d matches listed, want %d", tc.key, len(amb.Matches), tc.n)
			}
			for _, m := range amb.Matches {
				if !strings.Contains(err.Error(), m.Runtime+":"+m.ID) {
					t.Errorf("match %q: error %q does not list %s:%s", tc.key, err, m.Runtime, m.ID)
				}
			}
		}
	}
}

// A containerd reference names an ID within one containerd namespace: the
// same prefix elsewhere does not make it ambiguous, two in the namespace
// do, and the error names both with their namespace.
func TestMatchContainerdNamespace(t *testing.T) {
	cs := []Container{
		{Runtime: "containerd", ContainerdNamespace: "default", ID: "aa11", Name: "aa11"},
		{Runtime: "containerd", ContainerdNamespace: "default", ID: "aa22", Name: "web"},
		{Runtime: "containerd", ContainerdNamespace: "k8s.io", ID: "ab33", Name: "ab33"},
		{Runtime: "cri", ID: "ab44", Name: "main"},
	}
	ref, _ := ParseRef("containerd:ab")
	if _, err := match(ref.String(), ref.Key, inContainerdNamespace(cs, ref.Namespace)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("containerd:ab in default: %v, want ErrNotFound (ab33 is k8s.io's)", err)
	}
	ref, _ = ParseRef("containerd:k8s.io/ab")
	if c, err := match(ref.String(), ref.Key, inContainerdNamespace(cs, ref.Namespace)); err != nil || c.ID != "ab33" {
		t.Fatalf("containerd:k8s.io/ab: %+v, %v", c, err)
	}
	ref, _ = ParseRef("containerd:a")
	_, err := match(ref.String(), ref.Key, inContainerdNamespace(cs, ref.Namespace))
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "containerd:default/aa11 (aa11)") || !strings.Contains(err.Error(), "containerd:default/aa22 (web)") || strings.Contains(err.Error(), "ab33") {
		t.Fatalf("containerd:a: %v, want both default containers listed", err)
	}
	if got := cs[1].Label(); got != "containerd:default/aa22" {
		t.Fatalf("Label = %q", got)
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"docker:web", "podman:0eab", "container:a", "docker:", "docker:/x", "pod:a/b/c", "docker:a\x00", "containerd:k8s.io/0eab", "containerd:/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrBadRef) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseRef(%q): error %v", s, err)
			}
			return
		}
		if !IsRef(s) || r.Key == "" || len(r.Key) > 255 || strings.ContainsAny(r.Key, "/: \x00") {
			t.Fatalf("ParseRef(%q) = %+v accepted a bad key", s, r)
		}
		again, err := ParseRef(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseRef(%q).String() = %q does not parse back: %+v, %v", s, r.String(), again, err)
		}
	})
}

func TestMatchPods(t *testing.T) {
	pod := func(id, ns, name string, ready bool) Container {
		return Container{Runtime: "cri", Kind: KindPod, ID: id, Pod: name, PodNamespace: ns, Running: ready}
	}
	cs := []Container{
		pod("a1", "default", "web-0", false), // an old sandbox of web-0
		pod("a2", "default", "web-0", true),
		pod("a3", "default", "web-1", true),
		pod("b1", "prod", "web-0", true),
		pod("c1", "default", "db", true),
		{Runtime: "cri", ID: "d1", Name: "web-0", Pod: "web-0", PodNamespace: "default", PodSandboxID: "a2", Running: true},
	}
	ids := func(cs []Container) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		ref, want string
		err       error
	}{
		{ref: "pod:default/web-0", want: "a2"},
		{ref: "pod:db", want: "c1"},
		{ref: "pod:default/web-*", want: "a2,a3"},
		{ref: "pod:*/web-0", want: "a2,b1"},
		{ref: "pod:web-0", err: ErrAmbiguous},
		{ref: "pod:prod/db", err: ErrNotFound},
		{ref: "pod:x*", err: ErrNotFound},
	} {
		r, err := ParseRef(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := matchPods(r, cs)
		if !errors.Is(err, tc.err) || ids(got) != tc.want {
			t.Errorf("matchPods(%s) = %s, %v; want %s, %v", tc.ref, ids(got), err, tc.want, tc.err)
		}
		if tc.err == ErrAmbiguous && (err == nil || !strings.Contains(err.Error(), "pod:prod/web-0") || !strings.Contains(err.Error(), "pod:default/web-0")) {
			t.Errorf("matchPods(%s): %v does not list both pods", tc.ref, err)
		}
	}
}

func TestParseVerboseInfo(t *testing.T) {
	const sandbox = `{"pid":4242,"processStatus":"running","runtimeSpec":{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1234"}]}}}`
	v, err := parseVerboseInfo(sandbox)
	if err != nil || v.PID != 4242 || v.Netns != "/var/run/netns/cni-1234" {
		t.Fatalf("sandbox info: %+v, %v", v, err)
	}
	v, err = parseVerboseInfo(`{"sandboxID":"ab12","pid":7,"runtimeSpec":{"linux":{"namespaces":[{"type":"network","path":"/proc/4242/ns/net"}]}}}`)
	if err != nil || v.PID != 7 || v.SandboxID != "ab12" || v.Netns != "/proc/4242/ns/net" {
		t.Fatalf("container info: %+v, %v", v, err)
	}
	if v, err := parseVerboseInfo(""); err != nil || v != (verboseInfo{}) {
		t.Fatalf("no info: %+v, %v", v, err)
	}
	for _, bad := range []string{`{`, `{"pid":-1}`, `{"pid":99999999}`, `{"sandboxID":"../x"}`,
		`{"runtimeSpec":{"linux":{"namespaces":[{"type":"network","path":"run/netns/x"}]}}}`,
		`{"runtimeSpec":{"linux":{"namespaces":[{"type":"network","path":"/run/../etc/x"}]}}}`} {
		if _, err := parseVerboseInfo(bad); !errors.Is(err, errBadInfo) {
			t.Errorf("parseVerboseInfo(%s): %v, want errBadInfo", bad, err)
		}
	}
}

func FuzzParseVerboseInfo(f *testing.F) {
	f.Add(`{"pid":4242,"runtimeSpec":{"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/cni-1"}]}}}`)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseVerboseInfo(s)
		if err != nil {
			return
		}
		if v.PID < 0 || v.PID >= maxPID {
			t.Fatalf("pid %d accepted", v.PID)
		}
		if v.Netns != "" && (!strings.HasPrefix(v.Netns, "/") || strings.Contains(v.Netns, "/../")) {
			t.Fatalf("netns path %q accepted", v.Netns)
		}
	})
}

// containerd keeps each container's OCI runtime spec: a network entry with
// a path is the pinned netns it joins, one without a path a namespace the
// container made, none at all the host's.
func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want specNetns
	}{
		{`{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1"}]}}`, specNetns{Own: true, Path: "/var/run/netns/cni-1"}},
		{`{"linux":{"namespaces":[{"type":"mount"},{"type":"network"}]}}`, specNetns{Own: true}},
		{`{"linux":{"namespaces":[{"type":"network","path":"/proc/4242/ns/net"}]}}`, specNetns{Own: true, Path: "/proc/4242/ns/net", JoinsPID: 4242}},
		{`{"linux":{"namespaces":[{"type":"network","path":"/proc/04242/ns/net"}]}}`, specNetns{Own: true, Path: "/proc/04242/ns/net"}},
		{`{"linux":{"namespaces":[{"type":"network","path":"/proc/99999999/ns/net"}]}}`, specNetns{Own: true, Path: "/proc/99999999/ns/net"}},
		{`{"linux":{"namespaces":[{"type":"network","path":"/proc/42/task/42/ns/net"}]}}`, specNetns{Own: true, Path: "/proc/42/task/42/ns/net"}},
		{`{"linux":{"namespaces":[{"type":"mount"}]}}`, specNetns{}},
		{`{"process":{"args":["sh"]}}`, specNetns{}},
		{``, specNetns{}},
	} {
		got, err := parseSpec([]byte(tc.spec))
		if err != nil || got != tc.want {
			t.Errorf("parseSpec(%s) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{`, `[1]`, `{"linux":{"namespaces":[{"type":"network","path":"netns/x"}]}}`,
		`{"linux":{"namespaces":[{"type":"network","path":"/run//netns/x"}]}}`, `{"linux":{"namespaces":"x"}}`} {
		if _, err := parseSpec([]byte(bad)); !errors.Is(err, errBadInfo) {
			t.Errorf("parseSpec(%s): %v, want errBadInfo", bad, err)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(`{"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/cni-1"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseSpec(b)
		if err != nil {
			if !errors.Is(err, errBadInfo) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("parseSpec(%q): error %v", b, err)
			}
			return
		}
		if n.JoinsPID != 0 && (n.JoinsPID < 0 || n.JoinsPID >= 1<<22 || n.Path != "/proc/"+strconv.Itoa(n.JoinsPID)+"/ns/net") {
			t.Fatalf("parseSpec(%q) = %+v: a PID not from its path", b, n)
		}
		if n.Path != "" && (!n.Own || !strings.HasPrefix(n.Path, "/") || strings.Contains(n.Path, "/../") || strings.Contains(n.Path, "//") || strings.ContainsRune(n.Path, 0)) {
			t.Fatalf("parseSpec(%q) = %+v accepted a bad path", b, n)
		}
	})
}

func TestSelector(t *testing.T) {
	l := map[string]string{"app": "web", "tier": "front", "io.kubernetes.pod.namespace": "default"}
	for s, want := range map[string]bool{
		"app=web": true, "app==web": true, "app=db": false, "app!=db": true, "app!=web": false,
		"app=web,tier=front": true, "app=web,tier=back": false, "tier": true, "!tier": false, "!other": true,
		"io.kubernetes.pod.namespace=default": true, " app = web ": true,
	} {
		sel, err := ParseSelector(s)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", s, err)
		}
		if sel.Matches(l) != want {
			t.Errorf("%q matches %v: %v, want %v", s, l, !want, want)
		}
	}
	for _, bad := range []string{"", "app=we b", "=web", "app=x\x1b[31m", ",", "app=" + strings.Repeat("a", 64)} {
		if _, err := ParseSelector(bad); !errors.Is(err, ErrBadSelector) || strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("ParseSelector(%q): %v, want ErrBadSelector", bad, err)
		}
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"app=web", "app!=db,tier", "!x", "a==b", "=", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			if !errors.Is(err, ErrBadSelector) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSelector(%q): %v", s, err)
			}
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Fatalf("ParseSelector(%q).String() = %q does not parse back: %v", s, sel.String(), err)
		}
	})
}

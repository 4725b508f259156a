package runtime

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// What podman 4.3 prints, cut to the fields read.
const (
	podmanPSOut = `[{"Id":"d6f78f9e2b90168ba7e33a974868e9f1748b472bbffe0e1e6c0d75f9961d6b85","Names":["web"],"State":"running","Pid":897,"Labels":{"io.kubernetes.pod.name":"p","io.kubernetes.pod.namespace":"default"}},
{"Id":"5ca2af55fb3afbb5f6a05470fbc8918cc7a7ad258be694be65d1e4b7f258f180","Names":["made"],"State":"created","Pid":0,"Labels":null}]`
	podmanInspectOut = `[{"Id":"d6f78f9e2b90168ba7e33a974868e9f1748b472bbffe0e1e6c0d75f9961d6b85","Name":"web",
"State":{"Status":"running","Running":true,"Pid":897},"Config":{"Labels":null},"HostConfig":{"NetworkMode":"bridge"},
"NetworkSettings":{"SandboxKey":"/run/netns/netns-4e58fe9a","Networks":{"podman":{"IPAddress":"10.88.0.68","IPPrefixLen":16,"GlobalIPv6Address":"","GlobalIPv6PrefixLen":0}}}},
{"Id":"5ca2af55fb3afbb5f6a05470fbc8918cc7a7ad258be694be65d1e4b7f258f180","Name":"made",
"State":{"Status":"created","Running":false,"Pid":0},"HostConfig":{"NetworkMode":"container:d6f78f9e2b90"},
"NetworkSettings":{"SandboxKey":"","Networks":{}}}]`
)

func TestParsePodman(t *testing.T) {
	ps, err := parsePodmanPS([]byte(podmanPSOut))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "web" || !ps[0].Running || ps[0].Pod != "p" || ps[0].PodNamespace != "default" ||
		ps[1].Name != "made" || ps[1].Running || ps[1].State != "created" || ps[0].Detailed {
		t.Fatalf("parsePodmanPS: %+v", ps)
	}
	in, err := parsePodmanInspect([]byte(podmanInspectOut))
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 2 {
		t.Fatalf("parsePodmanInspect: %d records", len(in))
	}
	web, made := in[0], in[1]
	if !web.Detailed || web.PID != 897 || web.Netns != "/run/netns/netns-4e58fe9a" || web.NetworkMode != "bridge" ||
		len(web.Addresses) != 1 || web.Addresses[0] != netip.MustParsePrefix("10.88.0.68/16") || web.Label() != "podman:web" {
		t.Fatalf("running container: %+v", web)
	}
	if made.Running || made.PID != 0 || made.Netns != "" || made.SharesWith() != "d6f78f9e2b90" {
		t.Fatalf("created container: %+v", made)
	}
	for _, bad := range []string{
		``, `{}`, `[{"Id":""}]`, `[{"Id":"-rf"}]`, `[{"Id":"a b"}]`,
		`[{"Id":"ab","State":{"Running":true,"Pid":0}}]`,
		`[{"Id":"ab","State":{"Running":true,"Pid":5},"NetworkSettings":{"SandboxKey":"run/netns/x"}}]`,
	} {
		if _, err := parsePodmanInspect([]byte(bad)); !errors.Is(err, ErrBadPodmanOutput) {
			t.Errorf("parsePodmanInspect(%s): %v, want ErrBadPodmanOutput", bad, err)
		}
	}
	if _, err := parsePodmanPS([]byte(`[{"Id":"x\u001b[31m"}]`)); !errors.Is(err, ErrBadPodmanOutput) {
		t.Errorf("parsePodmanPS with an escape in the ID: %v, want ErrBadPodmanOutput", err)
	}
}

// FuzzPodmanJSON: whatever podman prints, the parsers return containers
// whose IDs are usable as arguments and keys, absolute netns paths and
// positive PIDs for running ones, or ErrBadPodmanOutput.
func FuzzPodmanJSON(f *testing.F) {
	f.Add([]byte(podmanPSOut))
	f.Add([]byte(podmanInspectOut))
	f.Add([]byte(`[{"Id":"ab","State":{"Running":true,"Pid":1},"NetworkSettings":{"SandboxKey":"/a/../b","Networks":{"n":{"IPAddress":"fe80::1%eth0","IPPrefixLen":64}}}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(cs []Container, err error) {
			if err != nil {
				if !errors.Is(err, ErrBadPodmanOutput) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q", err)
				}
				return
			}
			for _, c := range cs {
				if checkID(c.ID) != nil {
					t.Fatalf("ID %q accepted", c.ID)
				}
				if c.Running && c.Detailed && c.PID <= 0 {
					t.Fatalf("running with PID %d", c.PID)
				}
				if c.Netns != "" && (!strings.HasPrefix(c.Netns, "/") || strings.Contains(c.Netns, "/../")) {
					t.Fatalf("netns path %q accepted", c.Netns)
				}
				for _, a := range c.Addresses {
					if !a.IsValid() || a.Addr().Zone() != "" {
						t.Fatalf("address %v accepted", a)
					}
				}
			}
		}
		check(parsePodmanPS(data))
		check(parsePodmanInspect(data))
	})
}

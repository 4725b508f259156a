package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
)

// TestRunAsKubectlPlugin builds the binary as kubectl-netobs and runs it
// the way kubectl runs a plugin it finds on PATH: `kubectl netobs ARGS`
// execs kubectl-netobs with ARGS and passes its exit status on. (kubectl
// itself is not a Debian package, so the test does what it does.)
func TestRunAsKubectlPlugin(t *testing.T) {
	nstest.RequireTools(t, "go")
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-netobs")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	plugin := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "none"))
		out, err := c.CombinedOutput()
		return string(out), err
	}
	out, err := plugin("--help")
	if err != nil || !strings.Contains(out, "kubectl netobs [command]") || !strings.Contains(out, "capture") {
		t.Errorf("kubectl netobs --help: %v\n%s", err, out)
	}
	// A usage mistake reaches the user with the plugin's status, 2.
	out, err = plugin("capture", "svc/web")
	var ee *exec.ExitError
	if !strings.Contains(out, "bad reference svc/web: unknown kind svc") {
		t.Errorf("kubectl netobs capture svc/web: %q", out)
	}
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("kubectl netobs capture svc/web: %v, want exit status 2", err)
	}
}

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

// TestKubectlRunsPlugin installs the binary as kubectl-netobs on a PATH and
// has kubectl itself find and run it as `kubectl netobs`.
func TestKubectlRunsPlugin(t *testing.T) {
	nstest.RequireTools(t, "kubectl", "go")
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-netobs"), ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	path := dir + string(os.PathListSeparator) + os.Getenv("PATH")
	kubectl := func(args ...string) (string, error) {
		c := exec.Command("kubectl", args...)
		c.Env = append(os.Environ(), "PATH="+path, "KUBECONFIG="+filepath.Join(dir, "none"))
		out, err := c.CombinedOutput()
		return string(out), err
	}
	out, err := kubectl("plugin", "list", "--name-only")
	if err != nil || !strings.Contains(out, "kubectl-netobs") {
		t.Errorf("kubectl plugin list: %v\n%s", err, out)
	}
	out, err = kubectl("netobs", "--help")
	if err != nil || !strings.Contains(out, "kubectl netobs [command]") || !strings.Contains(out, "capture") {
		t.Errorf("kubectl netobs --help: %v\n%s", err, out)
	}
	// A usage mistake reaches the user with the plugin's status, 2.
	out, err = kubectl("netobs", "capture", "svc/web")
	var ee *exec.ExitError
	if !strings.Contains(out, "bad reference svc/web: unknown kind svc") {
		t.Errorf("kubectl netobs capture svc/web: %q", out)
	}
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("kubectl netobs capture svc/web: %v, want exit status 2", err)
	}
}

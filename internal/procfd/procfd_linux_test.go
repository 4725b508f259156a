package procfd

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEachFindsOwnDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "marker")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := int(f.Fd())
	found := false
	if err := Each("/proc", func(pid, fd int, p string) bool {
		if pid != os.Getpid() {
			return false // the rest of this process is of no interest
		}
		if link, err := os.Readlink(p); err == nil && link == path && fd == want {
			found = true
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("fd %d of pid %d (%s) not seen", want, os.Getpid(), path)
	}
}

func TestEachUnreadableProc(t *testing.T) {
	if err := Each(filepath.Join(t.TempDir(), "none"), func(int, int, string) bool { return true }); err == nil {
		t.Fatal("a missing proc directory gave no error")
	}
}

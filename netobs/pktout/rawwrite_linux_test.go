package pktout

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOutputWriter: regular files are written with raw write(2); pipes,
// which can block, keep the runtime's write.
func TestOutputWriter(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := outputWriter(f).(*rawFile); !ok {
		t.Errorf("regular file: writer %T, want *rawFile", outputWriter(f))
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if got := outputWriter(w); got != w {
		t.Errorf("pipe: writer %T, want the *os.File itself", got)
	}
}

// TestLocalFS: raw writes only where write(2) cannot wait on a server.
func TestLocalFS(t *testing.T) {
	for _, m := range []int64{unix.TMPFS_MAGIC, unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC} {
		if !localFS(m) {
			t.Errorf("%#x not local", m)
		}
	}
	for _, m := range []int64{unix.NFS_SUPER_MAGIC, unix.FUSE_SUPER_MAGIC, unix.SMB_SUPER_MAGIC, 0x1234} {
		if localFS(m) {
			t.Errorf("%#x taken as local", m)
		}
	}
}

package pktout

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/netobs/netobs/internal/rawio"
)

// rawFile writes to a regular file with write(2) made as a raw system
// call (internal/rawio says why, and what it costs): with the runtime's
// writes netobs capture spent 0.69–0.93× tcpdump's CPU in a 64-byte flood,
// with raw ones 0.61–0.67× (interleaved runs).
//
// Only on local filesystems (localFS): a network or FUSE file may make
// write(2) wait on its server, and a raw call holds its P meanwhile.
type rawFile struct {
	rc syscall.RawConn
}

// outputWriter returns the writer records writes through: w itself, or a
// rawFile when w is an *os.File open on a regular file.
func outputWriter(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return w
	}
	var st unix.Stat_t
	var fs unix.Statfs_t
	serr := rc.Control(func(fd uintptr) {
		if err = unix.Fstat(int(fd), &st); err == nil {
			err = unix.Fstatfs(int(fd), &fs)
		}
	})
	if serr != nil || err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || !localFS(fs.Type) {
		return w // pipes, terminals, sockets, network and FUSE files: they may block, so the runtime must know
	}
	return &rawFile{rc: rc}
}

// localFS reports whether a filesystem of this type keeps its writes in
// local memory or on a local disk, so that write(2) never waits on a peer:
// a write to NFS, CIFS or a FUSE file system may hang for as long as its
// server does, and made raw it would hold a P (and so stop the garbage
// collector's next pause, and with it the whole process, signals included).
func localFS(magic int64) bool {
	switch uint32(magic) {
	case unix.TMPFS_MAGIC, unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.OVERLAYFS_SUPER_MAGIC, unix.RAMFS_MAGIC:
		return true
	}
	return false
}

func (f *rawFile) Write(b []byte) (int, error) { return rawio.Write(f.rc, b) }

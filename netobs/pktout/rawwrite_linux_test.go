package pktout

import (
	"os"
	"testing"
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

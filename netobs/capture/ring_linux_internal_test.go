package capture

import (
	"os"
	"testing"
)

func TestRingGeometry(t *testing.T) {
	page := os.Getpagesize()
	for _, c := range []struct {
		buffer, snaplen int
		block, blocks   int
	}{
		{DefaultBufferSize, 262144, 1 << 20, 4}, // the default: few wake-ups per flood
		{DefaultBufferSize, 96, 1 << 20, 4},     // a short snaplen gets large blocks too
		{16 << 20, 262144, 1 << 20, 16},         // never above 1 MiB
		{2 << 20, 262144, 512 << 10, 4},         // four blocks while a snaplen packet fits
		{MinBufferSize, 262144, 32 << 10, 2},    // at least two blocks, as before
		{MinBufferSize, 96, 16 << 10, 4},
	} {
		block, blocks := ringGeometry(c.buffer, c.snaplen)
		if block != c.block || blocks != c.blocks {
			t.Errorf("ringGeometry(%d, %d) = %d × %d, want %d × %d", c.buffer, c.snaplen, blocks, block, c.blocks, c.block)
		}
		if block%page != 0 || blocks*block > c.buffer {
			t.Errorf("ringGeometry(%d, %d) = %d × %d: not whole pages within the buffer", c.buffer, c.snaplen, blocks, block)
		}
	}
}

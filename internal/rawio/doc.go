// Package rawio reads and writes a descriptor with read(2) and write(2)
// made as raw system calls (no entersyscall), through its
// syscall.RawConn, waiting in Go's poller only when the kernel answers
// EAGAIN. It is for descriptors whose calls never wait in the kernel: a
// regular file on a local filesystem, a non-blocking socket. There the Go
// runtime gains nothing from being told of the call, and telling it costs:
// each such call from a goroutine that keeps going idle and busy again
// wakes the runtime's monitor thread (sysmon) into a run of 20 µs sleeps,
// a sixth of a 64-byte capture's CPU (docs/BENCHMARKS.md). The price: the
// goroutine keeps its P during the call, so a call the kernel makes wait
// anyway (dirty-page throttling) delays the garbage collector's next
// stop-the-world pause for as long.
//
// Linux only; elsewhere the package is empty.
package rawio

// Package probe is the body of the test programs nohook and withhook: it
// prints what a hijacked start would change (that main ran, its
// environment, hostname, namespaces, /proc) and whether Unshare works.
package probe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/netobs/netobs/nsjoin"
)

// Main prints the probe's report on stdout. With the single argument
// -thread-in-new-uts it instead moves one thread into a new UTS namespace,
// prints that thread's ID and waits for stdin to close.
func Main() {
	if len(os.Args) == 2 && os.Args[1] == "-thread-in-new-uts" {
		threadInNewUTS()
		return
	}
	fmt.Println("main ran")
	fmt.Println("args", strings.Join(os.Args[1:], " "))
	_, set := os.LookupEnv("_NSJOIN_EXEC")
	fmt.Println("_NSJOIN_EXEC set:", set)
	host, _ := os.Hostname()
	fmt.Println("hostname", host)
	for _, t := range []string{"user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"} {
		link, _ := os.Readlink("/proc/self/ns/" + t)
		fmt.Println(t, link)
	}
	var st syscall.Stat_t
	syscall.Stat("/proc", &st)
	fmt.Println("/proc dev", st.Dev)
	c, err := nsjoin.Unshare(nsjoin.UnshareOptions{Types: []nsjoin.Type{nsjoin.UTS}}, "true")
	if err == nil {
		err = c.Run()
	}
	fmt.Println("Unshare:", err, errors.Is(err, nsjoin.ErrHookNotLinked))
}

func threadInNewUTS() {
	tid := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread stays there
		if err := syscall.Unshare(syscall.CLONE_NEWUTS); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		tid <- syscall.Gettid()
		select {}
	}()
	fmt.Println(<-tid)
	io.Copy(io.Discard, os.Stdin)
}

package sockdiag

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/netobs/netobs/internal/termsafe"
)

// WriteTable writes socks as `netobs sockets` prints them: a header and
// one aligned row per socket, in ss's columns. Names from the namespace
// (interfaces, process names) are escaped for the terminal.
func WriteTable(w io.Writer, socks []Socket) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Netid\tState\tRecv-Q\tSend-Q\tLocal Address:Port\tPeer Address:Port\tInode\tProcess")
	for i := range socks {
		s := &socks[i]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%s\n", s.Proto, s.State, s.RecvQ, s.SendQ, termsafe.Escape(s.LocalString()), s.PeerString(), s.Inode, procsText(s.Procs))
	}
	return tw.Flush()
}

func procsText(ps []Proc) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s(pid=%d,fd=%d)", termsafe.Escape(p.Comm), p.PID, p.FD)
	}
	return b.String()
}

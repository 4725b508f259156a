// Package web serves netobs's web page: the namespace graph (package topo)
// drawn in the browser and redrawn live as links and addresses change
// (package events), with a log of those events and a filter box. The
// page's assets are embedded in the binary: no CDN, it works offline.
//
// # API
//
// The page uses only this API, which other clients may use too:
//
//	GET /api/topology   the graph as topo's JSON ({"nodes":[...],"edges":[...]})
//	GET /api/events     server-sent events: one "message" per routing-netlink
//	                    event (link, addr, nsid) as events' JSON
//	GET /api/sockets?ns=ID
//	                    the TCP and UDP sockets of the namespace with topo
//	                    ID and the processes holding them, as a JSON array
//	                    of the objects of `netobs sockets --json`
//	POST /api/capture?ns=ID&iface=NAME
//	                    pcapng of interface NAME in the namespace with topo
//	                    ID, streamed until the client goes away or the
//	                    capture is stopped (then with the statistics blocks:
//	                    the kernel's drop count); header X-Netobs-Capture
//	                    is its id
//	POST /api/capture/stop?id=ID
//	                    stops that capture and answers its final counts
//	                    (CaptureCounts: captured, received, dropped by the
//	                    kernel); 204 if it ended without them
//
// # Safety
//
// Text from inside namespaces (interface and process names) reaches the
// page only as data, and the page sets it only as text (textContent,
// never innerHTML); a Content-Security-Policy allows scripts from the
// server's own files only, so even a mistake could not run injected
// script. The server refuses every method but GET and HEAD, and POST on
// the capture paths when the Origin or Sec-Fetch-Site header says
// another site sent it (http.CrossOriginProtection). Without a
// token it answers only requests whose Host header names it on loopback
// (a DNS-rebinding page cannot reach it); with a token (required for any
// address but loopback) every request must carry it: "Authorization:
// Bearer TOKEN" or "?token=TOKEN" (the page passes on the one it was
// opened with).
//
// # Privileges and threads
//
// Drawing the graph enters every namespace (topo.Build) and watching
// events holds a netlink socket in each (events.New), a capture an
// AF_PACKET socket (capture.Open): CAP_SYS_ADMIN, CAP_SYS_PTRACE and
// CAP_NET_RAW, in practice root. Handlers run on net/http's
// goroutines; namespace work happens inside those packages' nsjoin.Do.
package web

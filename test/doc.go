// Package test holds netobs's integration tests: they build the netobs
// binary, run it as root against real namespaces made with `ip netns`,
// `unshare` and veth pairs, and check what it reports against real peers
// (ip, lsns, nsenter, tshark, tcpdump, ss).
package test

// The hook's instruction parser, shared with the Go wrapper that fuzzes it.
#ifndef NSJOIN_NSEXEC_H
#define NSJOIN_NSEXEC_H

#include <stddef.h>

#define NSJOIN_MAX_JOIN 8
#define NSJOIN_NONCE_LEN 16
#define NSJOIN_HOSTNAME_MAX 64

struct nsjoin_spec {
	unsigned long join_flag[NSJOIN_MAX_JOIN];
	int join_fd[NSJOIN_MAX_JOIN];
	int njoin;
	unsigned long unshare_flags;
	int map_root;
	unsigned int map_uid, map_gid;
	char hostname[NSJOIN_HOSTNAME_MAX + 1];
	int mount_proc, do_fork;
};

// nsjoin_parse_spec parses the instructions [buf, buf+len) strictly; 0 on
// success, -1 on anything the parent would never send.
int nsjoin_parse_spec(const char *buf, size_t len, struct nsjoin_spec *sp);

#endif

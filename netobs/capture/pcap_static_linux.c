//go:build linux && cgo && netobs_static

// See pcap_static_linux.go. sd_listen_fds(3): 0 means no sockets were
// passed; sd_is_socket(3): 0 means "not such a socket".
int sd_listen_fds(int unset_environment) {
	(void)unset_environment;
	return 0;
}

int sd_is_socket(int fd, int family, int type, int listening) {
	(void)fd;
	(void)family;
	(void)type;
	(void)listening;
	return 0;
}

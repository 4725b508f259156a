//go:build linux && cgo

// The pre-runtime hook behind nsjoin.Command and nsjoin.Unshare.
//
// A Go process is multi-threaded before main runs, and the kernel lets only
// a single-threaded process join a user or time namespace, and only a
// thread with its own filesystem attributes join a mount namespace. So
// nsjoin re-executes the binary, and this constructor, which the dynamic
// loader runs before the Go runtime starts any thread, joins or creates the
// namespaces and execs the command. It is the approach of runc's nsexec,
// reduced to what nsenter and unshare do.
//
// Trust: the environment alone never makes the hook act. _NSJOIN_EXEC only
// names an inherited descriptor and a nonce (FD:32 hex digits); the hook
// acts only if that descriptor is an AF_UNIX SOCK_SEQPACKET socket whose
// peer (SO_PEERCRED) is this process's parent, and the message waiting on
// it starts with "NSJ1" and the same nonce. Under AT_SECURE (setuid, setgid
// or file capabilities) it never acts. In every other case it removes the
// variable and returns, and the program's own main runs untouched.
//
// The instructions after the nonce are comma-separated tokens (see
// nsjoin/internal/hookproto); argv[1..] is the command. A failure is
// reported as one status message on the socket ("<kind><errno> <text>",
// kind 'f' for setup, 'x' for exec) before exiting 125, 126 or 127; exec
// closes the socket, which the parent reads as success.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nsexec.h"

#define ENV_NAME "_NSJOIN_EXEC"
#define MAGIC "NSJ1"
#define MAGIC_LEN 4
#define MAX_MESSAGE 4096

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif

static const unsigned long known_flags[] = {
	CLONE_NEWUSER, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWUTS,
	CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWTIME,
};
#define ALL_FLAGS (CLONE_NEWUSER | CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWUTS | \
		   CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWTIME)

static int status_fd = -1;

// report sends one status message to the parent (or stderr if there is no
// socket yet) and exits with code.
static void report(int code, char kind, int err, const char *fmt, ...) {
	char msg[512];
	int n = snprintf(msg, sizeof msg, "%c%d ", kind, err);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg + n, sizeof msg - n, fmt, ap);
	va_end(ap);
	if (m < 0) m = 0;
	n += m;
	if (n > (int)sizeof msg - 1) n = sizeof msg - 1;
	// Keep the message to printable text: the parent refuses anything else.
	for (int i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f) msg[i] = '?';
	ssize_t w = status_fd >= 0 ? send(status_fd, msg, n, MSG_NOSIGNAL) : write(2, msg, n);
	(void)w;
	_exit(code);
}

#define fail(err, ...) report(125, 'f', (err), __VA_ARGS__)

static const char *type_name(unsigned long flag) {
	switch (flag) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWNET: return "net";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNS: return "mnt";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

// parse_num parses [s, end) as a number in base 10 or 16: digits only, at
// least one, no sign, no overflow past max.
static int parse_num(const char *s, const char *end, int base, unsigned long max, unsigned long *out) {
	if (s >= end || end - s > 16) return -1;
	unsigned long v = 0;
	for (; s < end; s++) {
		int d;
		if (*s >= '0' && *s <= '9') d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
		else return -1;
		if (v > (max - d) / base) return -1;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

static int parse_pair(const char *s, const char *end, int base, unsigned long max1, unsigned long max2,
		      unsigned long *a, unsigned long *b) {
	const char *colon = memchr(s, ':', end - s);
	if (colon == NULL) return -1;
	if (parse_num(s, colon, base, max1, a) != 0) return -1;
	return parse_num(colon + 1, end, 10, max2, b);
}

static int known_flag(unsigned long f) {
	for (size_t i = 0; i < sizeof known_flags / sizeof known_flags[0]; i++)
		if (known_flags[i] == f) return 1;
	return 0;
}

static int valid_hostname(const char *s, size_t n) {
	if (n == 0 || n > NSJOIN_HOSTNAME_MAX) return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

int nsjoin_parse_spec(const char *buf, size_t len, struct nsjoin_spec *sp) {
	memset(sp, 0, sizeof *sp);
	if (len == 0) return -1;
	int seen_n = 0, seen_m = 0, seen_h = 0, seen_p = 0, seen_f = 0;
	const char *end = buf + len;
	for (const char *tok = buf; tok <= end;) {
		const char *next = memchr(tok, ',', end - tok);
		const char *tend = next ? next : end;
		if (tend == tok) return -1;
		unsigned long a, b;
		switch (*tok) {
		case 'j':
			if (sp->njoin == NSJOIN_MAX_JOIN) return -1;
			if (parse_pair(tok + 1, tend, 16, ALL_FLAGS, 1 << 20, &a, &b) != 0) return -1;
			if (!known_flag(a) || b < 3) return -1;
			for (int i = 0; i < sp->njoin; i++)
				if (sp->join_flag[i] == a || sp->join_fd[i] == (int)b) return -1;
			sp->join_flag[sp->njoin] = a;
			sp->join_fd[sp->njoin] = (int)b;
			sp->njoin++;
			break;
		case 'n':
			if (seen_n++) return -1;
			if (parse_num(tok + 1, tend, 16, ALL_FLAGS, &a) != 0) return -1;
			if (a == 0 || (a & ~(unsigned long)ALL_FLAGS) != 0) return -1;
			sp->unshare_flags = a;
			break;
		case 'm':
			if (seen_m++) return -1;
			if (parse_pair(tok + 1, tend, 10, 0xffffffffUL, 0xffffffffUL, &a, &b) != 0) return -1;
			sp->map_root = 1;
			sp->map_uid = (unsigned int)a;
			sp->map_gid = (unsigned int)b;
			break;
		case 'h':
			if (seen_h++) return -1;
			if (!valid_hostname(tok + 1, tend - tok - 1)) return -1;
			memcpy(sp->hostname, tok + 1, tend - tok - 1);
			sp->hostname[tend - tok - 1] = 0;
			break;
		case 'p':
			if (seen_p++ || tend != tok + 1) return -1;
			sp->mount_proc = 1;
			break;
		case 'f':
			if (seen_f++ || tend != tok + 1) return -1;
			sp->do_fork = 1;
			break;
		default:
			return -1;
		}
		if (next == NULL) break;
		tok = next + 1;
		if (tok == end) return -1; // trailing comma
	}
	// Either join or create; what is set up must be created here.
	if ((sp->njoin > 0) == (sp->unshare_flags != 0)) return -1;
	if (sp->map_root && !(sp->unshare_flags & CLONE_NEWUSER)) return -1;
	if (sp->hostname[0] && !(sp->unshare_flags & CLONE_NEWUTS)) return -1;
	if (sp->mount_proc && !(sp->unshare_flags & CLONE_NEWNS)) return -1;
	return 0;
}

// parse_env accepts exactly "FD:NONCE", FD decimal >= 3, NONCE 32
// lowercase hex digits.
static int parse_env(const char *env, int *fd, unsigned char nonce[NSJOIN_NONCE_LEN]) {
	const char *colon = strchr(env, ':');
	if (colon == NULL) return -1;
	unsigned long v;
	if (parse_num(env, colon, 10, 1 << 20, &v) != 0 || v < 3) return -1;
	const char *hex = colon + 1;
	if (strlen(hex) != 2 * NSJOIN_NONCE_LEN) return -1;
	for (int i = 0; i < NSJOIN_NONCE_LEN; i++) {
		unsigned long byte;
		if (parse_num(hex + 2 * i, hex + 2 * i + 2, 16, 255, &byte) != 0) return -1;
		nonce[i] = (unsigned char)byte;
	}
	*fd = (int)v;
	return 0;
}

// from_parent reports whether fd is an AF_UNIX SOCK_SEQPACKET socket whose
// peer is this process's parent.
static int from_parent(int fd) {
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
	int v;
	socklen_t len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 || v != AF_UNIX) return 0;
	len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) != 0 || v != SOCK_SEQPACKET) return 0;
	struct ucred cred;
	len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
	pid_t ppid = getppid();
	return cred.pid > 0 && cred.pid == ppid;
}

static int nonce_equal(const unsigned char *a, const unsigned char *b) {
	unsigned char d = 0;
	for (int i = 0; i < NSJOIN_NONCE_LEN; i++) d |= a[i] ^ b[i];
	return d == 0;
}

static void write_file(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) fail(errno, "open %s: %s", path, strerror(errno));
	size_t len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len) fail(errno, "write %s: %s", path, strerror(errno));
	close(fd);
}

static pid_t child_pid;

// relay passes on to the child only what the parent (netobs) sent this
// process. A signal the terminal or kill(-pgrp) delivered to the whole
// process group reached the child already; passing it on would deliver it
// twice.
static void relay(int sig, siginfo_t *info, void *uctx) {
	(void)uctx;
	if (child_pid > 0 && info->si_code == SI_USER && info->si_pid == getppid()) kill(child_pid, sig);
}

// Waits for the child and ends this process the way the child ended, as
// nsenter --fork and unshare --fork do.
static void wait_as_parent(pid_t pid) {
	child_pid = pid;
	struct sigaction sa = {0};
	sa.sa_sigaction = relay;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) _exit(125);
	}
	if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
	if (WIFSIGNALED(st)) {
		int sig = WTERMSIG(st);
		signal(sig, SIG_DFL);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), sig);
		_exit(128 + sig);
	}
	_exit(125);
}

static void run(const struct nsjoin_spec *sp, char **argv) {
	int join_fd[NSJOIN_MAX_JOIN];
	memcpy(join_fd, sp->join_fd, sizeof join_fd);

	// Join in nsenter's order and in its two passes: the user namespace is
	// skipped on the first pass, whose failures are forgiven, so that
	// entering a less privileged user namespace comes last and entering a
	// more privileged one comes first.
	int joined_user = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < sp->njoin; i++) {
			if (join_fd[i] < 0) continue;
			if (pass == 0 && sp->join_flag[i] == CLONE_NEWUSER) continue;
			if (setns(join_fd[i], (int)sp->join_flag[i]) != 0) {
				if (pass == 0) continue;
				if (errno == EPERM)
					fail(errno, "setns %s: %s (needs CAP_SYS_ADMIN)", type_name(sp->join_flag[i]), strerror(errno));
				fail(errno, "setns %s: %s", type_name(sp->join_flag[i]), strerror(errno));
			}
			if (sp->join_flag[i] == CLONE_NEWUSER) joined_user = 1;
			close(join_fd[i]);
			join_fd[i] = -1;
		}
	}
	if (joined_user) {
		// As nsenter: become root of the user namespace joined.
		if (setgroups(0, NULL) != 0 && errno != EPERM) fail(errno, "setgroups: %s", strerror(errno));
		if (setresgid(0, 0, 0) != 0) fail(errno, "setgid 0 in the user namespace: %s", strerror(errno));
		if (setresuid(0, 0, 0) != 0) fail(errno, "setuid 0 in the user namespace: %s", strerror(errno));
	}

	if (sp->unshare_flags != 0) {
		if (unshare((int)sp->unshare_flags) != 0) {
			if (errno == EPERM) fail(errno, "unshare: %s (needs CAP_SYS_ADMIN, or --user)", strerror(errno));
			fail(errno, "unshare: %s", strerror(errno));
		}
		if (sp->map_root) {
			char map[64];
			write_file("/proc/self/setgroups", "deny");
			snprintf(map, sizeof map, "0 %u 1", sp->map_uid);
			write_file("/proc/self/uid_map", map);
			snprintf(map, sizeof map, "0 %u 1", sp->map_gid);
			write_file("/proc/self/gid_map", map);
		}
		if ((sp->unshare_flags & CLONE_NEWNS) && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
			fail(errno, "make / private in the new mount namespace: %s", strerror(errno));
	}

	if (sp->do_fork) {
		pid_t pid = fork();
		if (pid < 0) fail(errno, "fork: %s", strerror(errno));
		if (pid > 0) {
			close(status_fd); // the child reports; exec closes its copy
			status_fd = -1;
			wait_as_parent(pid);
		}
	}

	if (sp->mount_proc) {
		if (mount("none", "/proc", NULL, MS_REC | MS_PRIVATE, NULL) != 0 && errno != EINVAL)
			fail(errno, "make /proc private: %s", strerror(errno));
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
			fail(errno, "mount /proc: %s", strerror(errno));
	}
	if (sp->hostname[0] && sethostname(sp->hostname, strlen(sp->hostname)) != 0)
		fail(errno, "sethostname %s: %s", sp->hostname, strerror(errno));

	execvp(argv[0], argv);
	int err = errno;
	report(err == ENOENT ? 127 : 126, 'x', err, "%s", argv[0]);
}

__attribute__((constructor)) static void nsjoin_exec_hook(int argc, char **argv, char **envp) {
	(void)envp;
	const char *env = getenv(ENV_NAME);
	if (env == NULL) return;
	char copy[64];
	int fits = strlen(env) < sizeof copy;
	if (fits) strcpy(copy, env);
	unsetenv(ENV_NAME);
	if (getauxval(AT_SECURE) != 0) return;

	int sock;
	unsigned char want[NSJOIN_NONCE_LEN];
	if (!fits || parse_env(copy, &sock, want) != 0 || !from_parent(sock)) return;
	char msg[MAX_MESSAGE + 1];
	struct iovec iov = {msg, MAX_MESSAGE};
	struct msghdr mh = {0};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < MAGIC_LEN + NSJOIN_NONCE_LEN || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    memcmp(msg, MAGIC, MAGIC_LEN) != 0 || !nonce_equal((unsigned char *)msg + MAGIC_LEN, want))
		return;

	// From here on the instructions are the parent's own.
	fcntl(sock, F_SETFD, FD_CLOEXEC);
	status_fd = sock;
	if (send(sock, "a0 ", 3, MSG_NOSIGNAL) != 3) _exit(125);
	struct nsjoin_spec sp;
	if (nsjoin_parse_spec(msg + MAGIC_LEN + NSJOIN_NONCE_LEN, n - MAGIC_LEN - NSJOIN_NONCE_LEN, &sp) != 0)
		fail(EINVAL, "bad instructions from the parent");
	for (int i = 0; i < sp.njoin; i++)
		if (sp.join_fd[i] == sock) fail(EINVAL, "bad instructions from the parent");
	if (argc < 2) fail(EINVAL, "no command");
	run(&sp, argv + 1);
}

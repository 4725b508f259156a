//go:build linux && cgo

// The pre-runtime hook behind nsjoin.Command and nsjoin.Unshare.
//
// A Go process is multi-threaded before main runs, and the kernel lets only
// a single-threaded process join a user or time namespace, and only a
// thread with its own filesystem attributes join a mount namespace. So
// nsjoin re-executes the binary with _NSJOIN_EXEC in the environment, and
// this constructor, which the dynamic loader runs before the Go runtime
// starts any thread, joins or creates the namespaces and execs the command.
// It is the approach of runc's nsexec, reduced to what nsenter and unshare do.
//
// _NSJOIN_EXEC holds comma-separated tokens:
//   j<flag>:<fd>  join the namespace open at fd (flag: CLONE_NEW* in hex)
//   n<flags>      unshare(flags) (hex)
//   m<uid>:<gid>  map root to uid/gid in a new user namespace
//   h<name>       set the hostname (in a new UTS namespace)
//   p             mount a fresh /proc (in new mount and pid namespaces)
//   f             fork, so the command runs in new/joined pid and time namespaces
//   s<fd>         status pipe: failures are written there, exec closes it
// argv[1..] is the command.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#define MAX_JOIN 16

static int status_fd = 2;

static void fail(int code, const char *fmt, ...) {
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0) n = 0;
	if (n > (int)sizeof msg - 1) n = sizeof msg - 1;
	ssize_t w = write(status_fd, msg, n);
	(void)w;
	_exit(code);
}

static const char *type_name(unsigned long flag) {
	switch (flag) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWNET: return "net";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNS: return "mnt";
	case 0x80: return "time";
	}
	return "unknown";
}

static void write_file(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) fail(125, "open %s: %s", path, strerror(errno));
	size_t len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len) fail(125, "write %s: %s", path, strerror(errno));
	close(fd);
}

static pid_t child_pid;

static void forward_signal(int sig) {
	if (child_pid > 0) kill(child_pid, sig);
}

// Waits for the child and ends this process the way the child ended, as
// nsenter --fork and unshare --fork do.
static void wait_as_parent(pid_t pid) {
	child_pid = pid;
	struct sigaction sa = {0};
	sa.sa_handler = forward_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) fail(125, "waitpid: %s", strerror(errno));
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

__attribute__((constructor)) static void nsjoin_exec_hook(int argc, char **argv, char **envp) {
	(void)envp;
	const char *env = getenv("_NSJOIN_EXEC");
	if (env == NULL) return;
	char spec[4096];
	snprintf(spec, sizeof spec, "%s", env);
	unsetenv("_NSJOIN_EXEC");

	unsigned long join_flag[MAX_JOIN];
	int join_fd[MAX_JOIN];
	int njoin = 0, do_fork = 0, mount_proc = 0, map_root = 0;
	unsigned long unshare_flags = 0;
	unsigned int map_uid = 0, map_gid = 0;
	const char *hostname = NULL;

	for (char *save = NULL, *tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		switch (tok[0]) {
		case 'j':
			if (njoin == MAX_JOIN) fail(125, "too many namespaces");
			if (sscanf(tok + 1, "%lx:%d", &join_flag[njoin], &join_fd[njoin]) != 2) fail(125, "bad token %s", tok);
			njoin++;
			break;
		case 'n': unshare_flags = strtoul(tok + 1, NULL, 16); break;
		case 'm':
			if (sscanf(tok + 1, "%u:%u", &map_uid, &map_gid) != 2) fail(125, "bad token %s", tok);
			map_root = 1;
			break;
		case 'h': hostname = tok + 1; break;
		case 'p': mount_proc = 1; break;
		case 'f': do_fork = 1; break;
		case 's':
			status_fd = atoi(tok + 1);
			fcntl(status_fd, F_SETFD, FD_CLOEXEC);
			break;
		default: fail(125, "bad token %s", tok);
		}
	}
	if (argc < 2) fail(125, "no command");

	// Join in nsenter's order and in its two passes: the user namespace is
	// skipped on the first pass, whose failures are forgiven, so that
	// entering a less privileged user namespace comes last and entering a
	// more privileged one comes first.
	int joined_user = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < njoin; i++) {
			if (join_fd[i] < 0) continue;
			if (pass == 0 && join_flag[i] == CLONE_NEWUSER) continue;
			if (setns(join_fd[i], (int)join_flag[i]) != 0) {
				if (pass == 0) continue;
				if (errno == EPERM)
					fail(125, "setns %s: %s (needs CAP_SYS_ADMIN)", type_name(join_flag[i]), strerror(errno));
				fail(125, "setns %s: %s", type_name(join_flag[i]), strerror(errno));
			}
			if (join_flag[i] == CLONE_NEWUSER) joined_user = 1;
			close(join_fd[i]);
			join_fd[i] = -1;
		}
	}
	if (joined_user) {
		// As nsenter: become root of the user namespace joined.
		if (setgroups(0, NULL) != 0 && errno != EPERM) fail(125, "setgroups: %s", strerror(errno));
		if (setresgid(0, 0, 0) != 0) fail(125, "setgid 0 in the user namespace: %s", strerror(errno));
		if (setresuid(0, 0, 0) != 0) fail(125, "setuid 0 in the user namespace: %s", strerror(errno));
	}

	if (unshare_flags != 0) {
		if (unshare((int)unshare_flags) != 0) {
			if (errno == EPERM) fail(125, "unshare: %s (needs CAP_SYS_ADMIN, or --user)", strerror(errno));
			fail(125, "unshare: %s", strerror(errno));
		}
		if (map_root) {
			char map[64];
			write_file("/proc/self/setgroups", "deny");
			snprintf(map, sizeof map, "0 %u 1", map_uid);
			write_file("/proc/self/uid_map", map);
			snprintf(map, sizeof map, "0 %u 1", map_gid);
			write_file("/proc/self/gid_map", map);
		}
		if ((unshare_flags & CLONE_NEWNS) && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
			fail(125, "make / private in the new mount namespace: %s", strerror(errno));
	}

	if (do_fork) {
		pid_t pid = fork();
		if (pid < 0) fail(125, "fork: %s", strerror(errno));
		if (pid > 0) {
			close(status_fd); // the child reports; exec closes its copy
			status_fd = 2;
			wait_as_parent(pid);
		}
	}

	if (mount_proc) {
		if (mount("none", "/proc", NULL, MS_REC | MS_PRIVATE, NULL) != 0 && errno != EINVAL)
			fail(125, "make /proc private: %s", strerror(errno));
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
			fail(125, "mount /proc: %s", strerror(errno));
	}
	if (hostname != NULL && sethostname(hostname, strlen(hostname)) != 0)
		fail(125, "sethostname %s: %s", hostname, strerror(errno));

	execvp(argv[1], argv + 1);
	fail(errno == ENOENT ? 127 : 126, "exec %s: %s", argv[1], strerror(errno));
}

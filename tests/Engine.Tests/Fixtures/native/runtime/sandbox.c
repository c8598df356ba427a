/*
 * Runs a program where the run-time routine cannot write through /proc/self/mem, the three ways that happens:
 *   sandbox noproc  PROG ARGS...   a private mount namespace with an empty tmpfs over /proc (no /proc at all)
 *   sandbox roproc  PROG ARGS...   a private mount namespace with /proc bind-mounted read-only
 *   sandbox seccomp PROG ARGS...   a seccomp filter that fails pwrite64 with EPERM
 * The mounts are private to the new namespace (nothing propagates back). Needs root for the first two.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "sandbox: %s: %s\n", what, strerror(errno));
	return 126;
}

int main(int argc, char **argv)
{
	if (argc < 3) { fprintf(stderr, "usage: sandbox noproc|roproc|seccomp PROG ARGS...\n"); return 2; }
	if (strcmp(argv[1], "noproc") == 0 || strcmp(argv[1], "roproc") == 0) {
		if (unshare(CLONE_NEWNS) != 0) return fail("unshare(CLONE_NEWNS)");
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return fail("make / private");
		if (strcmp(argv[1], "noproc") == 0) {
			if (mount("none", "/proc", "tmpfs", 0, "size=4k") != 0) return fail("tmpfs over /proc");
		} else {
			if (mount("/proc", "/proc", NULL, MS_BIND, NULL) != 0) return fail("bind /proc");
			if (mount(NULL, "/proc", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) return fail("remount the bind read-only");
		}
	} else if (strcmp(argv[1], "seccomp") == 0) {
		struct sock_filter filter[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pwrite64, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog program = { sizeof filter / sizeof filter[0], filter };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail("no_new_privs");
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) return fail("seccomp");
	} else {
		fprintf(stderr, "sandbox: unknown mode '%s'\n", argv[1]);
		return 2;
	}
	execv(argv[2], argv + 2);
	return fail(argv[2]);
}

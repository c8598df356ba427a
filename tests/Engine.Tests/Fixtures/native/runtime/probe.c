/*
 * A program linked with native/retpoline_runtime.c: it prints what the routine recorded and the bytes each thunk
 * holds in its own memory, then proves the thunks still work with indirect calls through them.
 *   probe            print and exit
 *   probe wait       print, then "ready" and wait for stdin to close (so `retpoline status PID` can look at it)
 *   probe fork       the same from a forked child too, which then execs this program again ("exec" lines)
 */
#include <sys/wait.h>
#include <unistd.h>
#include "probe.h"

int main(int argc, char **argv)
{
	probe_report(argc > 1 && strcmp(argv[1], "child") == 0 ? "exec" : "main");
	if (argc > 1 && strcmp(argv[1], "wait") == 0) {
		printf("ready\n");
		fflush(stdout);
		char buffer[64];
		while (read(0, buffer, sizeof buffer) > 0) ;
	}
	if (argc > 1 && strcmp(argv[1], "fork") == 0) {
		pid_t child = fork();
		if (child == 0) {
			probe_report("fork");
			execl("/proc/self/exe", argv[0], "child", (char *)0);
			_exit(127);
		}
		int status;
		waitpid(child, &status, 0);
		return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	}
	return 0;
}

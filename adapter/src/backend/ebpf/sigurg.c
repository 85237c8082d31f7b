// SPDX-License-Identifier: MIT OR GPL-2.0-only
/* A SIGURG handler for C, C++ and Rust programs launched under eBPF.
 *
 * The eBPF backend reads XMM registers (float arguments and results) from
 * the signal frame the kernel builds when a probe sends the thread SIGURG
 * (see bpf/probe.bpf.c and docs/architecture.md). Go programs handle
 * SIGURG themselves; other programs ignore it by default, so logprobe
 * preloads this library (LD_PRELOAD, from a memfd) into the programs it
 * launches: its constructor installs `lp_sigurg_handler`, which does
 * nothing, for SIGURG unless the program already has a handler. SIGURG's
 * default action is to ignore it, so the program sees no difference;
 * SA_RESTART keeps a system call the signal interrupts from failing with
 * EINTR, SA_ONSTACK runs it on an alternate stack where one is set.
 *
 * The constructor also takes itself out of the environment (LD_PRELOAD
 * and LOGPROBE_PRELOAD_FD) and closes the descriptor it was loaded from,
 * so the program's own children start as they would without logprobe.
 * Asked to (LOGPROBE_STOP_AT_START), it then stops the program (SIGSTOP)
 * before any of the program's own code runs but after its executable is
 * mapped, so that logprobe can arm probes at run-time addresses of a
 * position-independent program, then continues it. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LP_FD_VAR "LOGPROBE_PRELOAD_FD"
#define LP_STOP_VAR "LOGPROBE_STOP_AT_START"

/* The uprobe `lp_sigtramp` is attached to this function's entry: its
 * arguments are where the kernel put them (signal in DI, ucontext in DX). */
__attribute__((visibility("default"), noinline, used)) void
lp_sigurg_handler(int sig, siginfo_t *info, void *uc)
{
	(void)sig;
	(void)info;
	(void)uc;
	__asm__ volatile("" ::: "memory");
}

/* Removes `entry` from the list of paths in LD_PRELOAD (separated by
 * colons or spaces), unsetting it when nothing else is left. */
static void drop_preload(const char *entry)
{
	const char *list = getenv("LD_PRELOAD");
	if (!list)
		return;
	size_t n = strlen(list), len = strlen(entry);
	char *kept = malloc(n + 1);
	if (!kept)
		return;
	size_t out = 0;
	const char *p = list;
	while (*p) {
		size_t k = strcspn(p, ": ");
		if (k && !(k == len && memcmp(p, entry, len) == 0)) {
			if (out)
				kept[out++] = ':';
			memcpy(kept + out, p, k);
			out += k;
		}
		p += k;
		if (*p)
			p++;
	}
	kept[out] = 0;
	if (out)
		setenv("LD_PRELOAD", kept, 1);
	else
		unsetenv("LD_PRELOAD");
	free(kept);
}

__attribute__((constructor)) static void lp_sigurg_init(void)
{
	struct sigaction old;
	if (sigaction(SIGURG, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
	    old.sa_handler == SIG_DFL) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = lp_sigurg_handler;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGURG, &sa, NULL);
	}
	const char *fd = getenv(LP_FD_VAR);
	if (!fd)
		return;
	int stop = getenv(LP_STOP_VAR) != NULL;
	unsetenv(LP_STOP_VAR);
	char entry[64] = "/proc/self/fd/";
	size_t at = strlen(entry);
	for (const char *d = fd; *d >= '0' && *d <= '9' && at < sizeof(entry) - 1; d++)
		entry[at++] = *d;
	entry[at] = 0;
	drop_preload(entry);
	close(atoi(fd));
	unsetenv(LP_FD_VAR);
	if (stop)
		raise(SIGSTOP);
}

/*
 * retpoline_runtime.c — RetpolineVendor=Runtime: each module rewrites its own thunks, in memory, for the CPU it runs
 * on, before any of its own code runs (what the kernel does to itself at boot).
 *
 * The file on disk keeps the Generic thunks of retpoline_thunks.S. When the module is loaded, this routine runs first:
 * from .preinit_array in an executable (before every shared library's constructor, before any thread exists), from
 * the earliest .init_array slot in a shared library (build with -DRETPOLINE_RUNTIME_SHARED). It
 *   1. does not run at all when the minimum (RetpolineRuntimeMinimum, -DRETPOLINE_RUNTIME_MINIMUM) is Generic:
 *      nothing could change, so nothing is read and the record says so from the start;
 *   2. looks for RETPOLINE_RUNTIME in the environment (the one glibc passes every initializer; elsewhere the initial
 *      one, /proc/self/environ): `generic` keeps Generic, and nothing there can choose a weaker form; when it is set,
 *      AT_SECURE (/proc/self/auxv) decides whether it counts: a setuid/setcap process ignores it;
 *   3. applies the `retpoline patch --vendor Host` rules (retpoline_runtime_tables.h, generated from the engine's
 *      table) to /sys/devices/system/cpu/vulnerabilities/spectre_v2 and, when that line alone does not decide,
 *      /proc/cpuinfo, never going below the minimum;
 *   4. writes each thunk's new body through /proc/self/mem (the kernel serves it by copy-on-write, as for a debugger's
 *      breakpoint) after checking that the thunk holds exactly the Generic body linked in; a thunk that holds anything
 *      else is left alone. No page is ever made writable (no mprotect): where the write is refused, or anything else
 *      fails, every thunk stays Generic and the program runs as built.
 * What it chose and why is kept in `retpoline_runtime_record`, which `retpoline status PID` reads from the process.
 *
 * Thunks are found through link-time symbols (hidden: only this module's own code can branch to them), never by
 * reading ELF at run time. The routine uses raw system calls only (openat, read, pwrite64, close): no libc call, no heap,
 * nothing that needs the C library initialised, and no indirect branch (no function pointer, no jump table), so it
 * verifies clean and calls none of the thunks it rewrites. Compile it with the flags Toolchain/FlagSet.cs gives it.
 *
 * For tests only, -DRETPOLINE_RUNTIME_FIXTURE_ROOT="\"/dir\"" reads the two machine files under /dir instead of /;
 * the SDK never passes it, and the record says when a build has it.
 */
#include <features.h> /* __GLIBC__ only: whether initializers are given the environment */
#include "retpoline_runtime_tables.h"

#ifndef RETPOLINE_RUNTIME_MINIMUM
#define RETPOLINE_RUNTIME_MINIMUM RPL_VENDOR_GENERIC
#endif
#ifdef RETPOLINE_RUNTIME_FIXTURE_ROOT
#define RPL_ROOT RETPOLINE_RUNTIME_FIXTURE_ROOT
#define RPL_BUILD_FLAGS RPL_RUN_FIXTURE_ROOT
#else
#define RPL_ROOT ""
#define RPL_BUILD_FLAGS 0
#endif

/* ---- the record `retpoline status` reads: layout fixed, `size` grows with it ------------------------------------- */

#define RPL_RUN_SECURE 0x1          /* AT_SECURE: RETPOLINE_RUNTIME was set and ignored */
#define RPL_RUN_ENV_GENERIC 0x2     /* RETPOLINE_RUNTIME=generic */
#define RPL_RUN_ENV_IGNORED 0x4     /* RETPOLINE_RUNTIME had another value, which nothing honours */
#define RPL_RUN_ROLLED_BACK 0x8     /* a write failed after others succeeded: those were written back to Generic */
#define RPL_RUN_FIXTURE_ROOT 0x100  /* a test build: the machine files come from a fixture folder */

#define RPL_NOT_EVALUATED 0xff

struct retpoline_runtime_record {
	char magic[8];                  /* "RPLRUN1" */
	unsigned int size;              /* sizeof this structure */
	unsigned char state;            /* 0: not run yet, 1: ran, 2: nothing to run (minimum Generic) */
	unsigned char minimum;          /* RPL_VENDOR_* the routine never goes below */
	unsigned char host;             /* what the host rules chose, RPL_NOT_EVALUATED when they were not needed */
	unsigned char chosen;           /* the form the thunks now have (Generic whenever anything failed) */
	unsigned int flags;             /* RPL_RUN_* */
	int error;                      /* errno of the first failure, 0 for none */
	unsigned short thunks;          /* thunks in the table */
	unsigned short patched;         /* rewritten for `chosen` */
	unsigned short unchanged;       /* already in that form */
	unsigned short left_alone;      /* neither the Generic body nor `chosen`: not touched */
	char decided_by[16];            /* minimum | environment | host | no-proc | write-refused */
	char reason[24];                /* the deciding host rule (HostRules.cs), "" when not evaluated */
	char mechanism[48];             /* the kernel's mechanism field, for the explanation */
};

__attribute__((visibility("hidden"), used, aligned(16)))
struct retpoline_runtime_record retpoline_runtime_record = {
	.magic = "RPLRUN1",
	.size = sizeof(struct retpoline_runtime_record),
	.minimum = RETPOLINE_RUNTIME_MINIMUM,
	.host = RPL_NOT_EVALUATED,
	.chosen = RPL_VENDOR_GENERIC,
	.flags = RPL_BUILD_FLAGS,
	.thunks = RPL_THUNK_COUNT,
#if RETPOLINE_RUNTIME_MINIMUM == RPL_VENDOR_GENERIC
	.state = 2,
	.decided_by = "minimum",
#endif
};

#if RETPOLINE_RUNTIME_MINIMUM != RPL_VENDOR_GENERIC

/* The thunks, by their link-time (hidden) symbols: addresses in this module, whatever its load address. */
#define RPL_DECLARE(name, reg, notrack) extern const unsigned char name[] __attribute__((visibility("hidden")));
RPL_FOR_EACH_THUNK(RPL_DECLARE)
#define RPL_ADDRESS(name, reg, notrack) name,
static const unsigned char *const rpl_thunk_addresses[RPL_THUNK_COUNT] = { RPL_FOR_EACH_THUNK(RPL_ADDRESS) };

/* ---- raw system calls -------------------------------------------------------------------------------------------- */

#define RPL_SYS_READ 0
#define RPL_SYS_CLOSE 3
#define RPL_SYS_PWRITE64 18
#define RPL_SYS_OPENAT 257
#define RPL_AT_FDCWD (-100)
#define RPL_O_RDONLY 0
#define RPL_O_RDWR 2
#define RPL_O_CLOEXEC 02000000
#define RPL_ENOENT 2
#define RPL_EINTR 4
#define RPL_AT_SECURE 23

static long rpl_syscall4(long number, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long result;
	__asm__ volatile("syscall" : "=a"(result) : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return result;
}

static int rpl_open(const char *path, int flags)
{
	return (int)rpl_syscall4(RPL_SYS_OPENAT, RPL_AT_FDCWD, (long)path, flags | RPL_O_CLOEXEC, 0);
}

static void rpl_close(int fd)
{
	rpl_syscall4(RPL_SYS_CLOSE, fd, 0, 0, 0);
}

static long rpl_read(int fd, char *buffer, long size)
{
	long n;
	do n = rpl_syscall4(RPL_SYS_READ, fd, (long)buffer, size, 0);
	while (n == -RPL_EINTR);
	return n;
}

/* Reads up to size bytes of a file; returns the length, -errno when it cannot be opened or read. *complete says
   whether the end of the file was reached within the buffer. */
static long rpl_read_file(const char *path, char *buffer, long size, int *complete)
{
	int fd = rpl_open(path, RPL_O_RDONLY);
	if (fd < 0) return fd;
	long length = 0, n = 1;
	while (length < size && (n = rpl_read(fd, buffer + length, size - length)) > 0) length += n;
	if (n > 0 && length == size) { char probe; n = rpl_read(fd, &probe, 1); *complete = n == 0; }
	else *complete = 1;
	rpl_close(fd);
	return n < 0 ? n : length;
}

/* ---- byte strings (the compiler must not turn these loops into library calls: -fno-builtin) ----------------------- */

static int rpl_equal(const char *a, long a_length, const char *z)
{
	long i = 0;
	for (; i < a_length; i++)
		if (z[i] != a[i] || z[i] == 0) return 0;
	return z[i] == 0;
}

static int rpl_starts(const char *a, long a_length, const char *prefix)
{
	long i = 0;
	for (; prefix[i] != 0; i++)
		if (i >= a_length || a[i] != prefix[i]) return 0;
	return 1;
}

static long rpl_find(const char *a, long a_length, const char *needle)
{
	for (long i = 0; i < a_length; i++)
		if (rpl_starts(a + i, a_length - i, needle)) return i;
	return -1;
}

static int rpl_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trims whitespace on both sides of [*text, *text + *length). */
static void rpl_trim(const char **text, long *length)
{
	while (*length > 0 && rpl_space(**text)) { (*text)++; (*length)--; }
	while (*length > 0 && rpl_space((*text)[*length - 1])) (*length)--;
}

static void rpl_copy(char *to, long capacity, const char *from, long length)
{
	long i = 0;
	for (; i < length && i < capacity - 1; i++) to[i] = from[i];
	for (; i < capacity; i++) to[i] = 0;
}

static int rpl_same_bytes(const unsigned char *a, const unsigned char *b, long n)
{
	for (long i = 0; i < n; i++)
		if (a[i] != b[i]) return 0;
	return 1;
}

/* True when the space-separated words of [text, text + length) include word. */
static int rpl_has_word(const char *text, long length, const char *word)
{
	long i = 0;
	while (i < length) {
		while (i < length && text[i] == ' ') i++;
		long start = i;
		while (i < length && text[i] != ' ') i++;
		if (i > start && rpl_equal(text + start, i - start, word)) return 1;
	}
	return 0;
}

/* ---- facts: the process ------------------------------------------------------------------------------------------ */

/* 1: AT_SECURE is set, 0: not, -errno: /proc/self/auxv unreadable. */
static int rpl_secure(void)
{
	unsigned long auxv[128];
	int complete;
	long n = rpl_read_file("/proc/self/auxv", (char *)auxv, sizeof auxv, &complete);
	if (n < 0) return (int)n;
	for (long i = 0; i + 1 < n / (long)sizeof(unsigned long); i += 2) {
		if (auxv[i] == 0) break;
		if (auxv[i] == RPL_AT_SECURE) return auxv[i + 1] != 0;
	}
	return 0;
}

/* Looks for RETPOLINE_RUNTIME=… one character at a time (entries end with NUL): result collects RPL_RUN_ENV_GENERIC
   (the value is `generic`, any case) and RPL_RUN_ENV_IGNORED (any other value). */
struct rpl_env_scan {
	long matched;   /* characters of the name matched at the start of this entry, -1: not this entry */
	long value;     /* characters of the value that spell "generic" so far, -1 once they cannot */
	int result;
};

static void rpl_env_feed(struct rpl_env_scan *e, char c)
{
	static const char name[] = "RETPOLINE_RUNTIME=";
	static const char generic[] = "generic";
	if (c == 0) {
		if (e->matched == (long)sizeof name - 1)
			e->result |= e->value == (long)sizeof generic - 1 ? RPL_RUN_ENV_GENERIC : RPL_RUN_ENV_IGNORED;
		e->matched = 0;
		e->value = 0;
	} else if (e->matched >= 0 && e->matched < (long)sizeof name - 1) {
		e->matched = c == name[e->matched] ? e->matched + 1 : -1;
	} else if (e->matched >= 0 && e->value >= 0) {
		char lower = c >= 'A' && c <= 'Z' ? (char)(c + 'a' - 'A') : c;
		e->value = e->value < (long)sizeof generic - 1 && lower == generic[e->value] ? e->value + 1 : -1;
	}
}

static int rpl_env_result(const struct rpl_env_scan *e)
{
	return e->result & RPL_RUN_ENV_GENERIC ? RPL_RUN_ENV_GENERIC : e->result;
}

/* The environment glibc passes every initializer (the process's for an executable, the current one under dlopen). */
static int rpl_environment_array(char **envp)
{
	struct rpl_env_scan e = { 0, 0, 0 };
	for (; *envp; envp++) {
		const char *entry = *envp;
		do rpl_env_feed(&e, *entry); while (*entry++);
	}
	return rpl_env_result(&e);
}

/* Elsewhere, the initial environment from /proc/self/environ, streamed: it may be larger than any buffer here.
   Returns the result, or -errno when the file cannot be read. */
static int rpl_environment_file(void)
{
	int fd = rpl_open("/proc/self/environ", RPL_O_RDONLY);
	if (fd < 0) return fd;
	struct rpl_env_scan e = { 0, 0, 0 };
	char chunk[1024];
	long n;
	while ((n = rpl_read(fd, chunk, sizeof chunk)) > 0)
		for (long i = 0; i < n; i++) rpl_env_feed(&e, chunk[i]);
	rpl_close(fd);
	return n < 0 ? (int)n : rpl_env_result(&e);
}

/* ---- facts: the machine, and the rules --------------------------------------------------------------------------- */

struct rpl_conditions {
	unsigned char spectre, cpu_known, spectre_bug, mechanism, addition, hardware_flag, amd_family;
};

static unsigned char rpl_lookup(const struct rpl_name *names, long count, const char *text, long length, unsigned char otherwise)
{
	for (long i = 0; i < count; i++)
		if (rpl_equal(text, length, names[i].text)) return names[i].value;
	return otherwise;
}

/* The spectre_v2 line, as HostRules.Classify reads it. */
static void rpl_classify_spectre(const char *text, long length, struct rpl_conditions *c, struct retpoline_runtime_record *r)
{
	rpl_trim(&text, &length);
	c->mechanism = RPL_MECHANISM_OTHER;
	c->addition = RPL_ADDITION_NOTHING;
	if (rpl_equal(text, length, RPL_NOT_AFFECTED)) { c->spectre = RPL_SPECTRE_NOT_AFFECTED; return; }
	if (rpl_starts(text, length, RPL_VULNERABLE_PREFIX)) { c->spectre = RPL_SPECTRE_VULNERABLE; return; }
	if (!rpl_starts(text, length, RPL_MITIGATION_PREFIX)) { c->spectre = RPL_SPECTRE_UNKNOWN; return; }
	c->spectre = RPL_SPECTRE_MITIGATION;
	const char *mechanism = text + sizeof RPL_MITIGATION_PREFIX - 1;
	long mechanism_length = length - (long)(sizeof RPL_MITIGATION_PREFIX - 1);
	for (long i = 0; i < mechanism_length; i++)
		for (const char *s = RPL_FIELD_SEPARATORS; *s; s++)
			if (mechanism[i] == *s) { mechanism_length = i; break; }
	rpl_trim(&mechanism, &mechanism_length);
	rpl_copy(r->mechanism, sizeof r->mechanism, mechanism, mechanism_length);
	long hardware_length = mechanism_length, plus = rpl_find(mechanism, mechanism_length, RPL_ADDITION_SEPARATOR);
	if (plus >= 0) {
		hardware_length = plus;
		const char *addition = mechanism + plus + sizeof RPL_ADDITION_SEPARATOR - 1;
		long addition_length = mechanism_length - plus - (long)(sizeof RPL_ADDITION_SEPARATOR - 1);
		c->addition = rpl_lookup(rpl_additions, sizeof rpl_additions / sizeof rpl_additions[0], addition, addition_length, RPL_ADDITION_OTHER);
	}
	c->mechanism = rpl_lookup(rpl_mechanisms, sizeof rpl_mechanisms / sizeof rpl_mechanisms[0], mechanism, hardware_length, RPL_MECHANISM_OTHER);
}

/* The first processor block of /proc/cpuinfo, as HostFacts reads it: the first vendor_id, flags and bugs lines.
   complete: text is the whole file. Returns whether the block is done within text: it ended, or all three lines were
   seen (nothing later can change them); one that is not done within RPL_CPUINFO_LIMIT bytes is not trusted
   (HostFacts applies the same rule). */
static int rpl_classify_cpu(const char *text, long length, int complete, struct rpl_conditions *c)
{
	int vendor_seen = 0, flags_seen = 0, bugs_seen = 0, ended = 0;
	c->cpu_known = c->spectre_bug = c->hardware_flag = c->amd_family = 0;
	for (long at = 0; at < length;) {
		long end = at;
		while (end < length && text[end] != '\n') end++;
		if (end == length && !complete) break;      /* a line cut by the buffer */
		const char *line = text + at;
		long line_length = end - at;
		at = end + 1;
		while (line_length > 0 && line[line_length - 1] == '\r') line_length--;
		if (line_length == 0) { if (vendor_seen) { ended = 1; break; } continue; }
		long colon = 0;
		while (colon < line_length && line[colon] != ':') colon++;
		if (colon == line_length) continue;
		const char *key = line, *value = line + colon + 1;
		long key_length = colon, value_length = line_length - colon - 1;
		rpl_trim(&key, &key_length);
		rpl_trim(&value, &value_length);
		if (!vendor_seen && rpl_equal(key, key_length, "vendor_id")) {
			vendor_seen = 1;
			for (long i = 0; i < (long)(sizeof rpl_amd_family_vendors / sizeof rpl_amd_family_vendors[0]); i++)
				if (rpl_equal(value, value_length, rpl_amd_family_vendors[i])) c->amd_family = 1;
		} else if (!flags_seen && rpl_equal(key, key_length, "flags")) {
			flags_seen = 1;
			for (long i = 0; i < (long)(sizeof rpl_hardware_flag_words / sizeof rpl_hardware_flag_words[0]); i++)
				if (rpl_has_word(value, value_length, rpl_hardware_flag_words[i])) c->hardware_flag = 1;
		} else if (!bugs_seen && rpl_equal(key, key_length, "bugs")) {
			bugs_seen = 1;
			c->spectre_bug = (unsigned char)rpl_has_word(value, value_length, RPL_SPECTRE_BUG_WORD);
		}
		if (vendor_seen && flags_seen && bugs_seen) { ended = 1; break; }
	}
	c->cpu_known = (unsigned char)(vendor_seen && (ended || complete));
	return ended;
}

/* Reads /proc/cpuinfo a little at a time and stops as soon as the first block is done: the kernel formats a CPU's
   block when a read reaches it (~13 us each on a loaded 2-core VM here), and a large machine has hundreds. */
static void rpl_read_cpu(const char *path, char *buffer, long size, struct rpl_conditions *c)
{
	int fd = rpl_open(path, RPL_O_RDONLY);
	if (fd < 0) return;
	long length = 0, n = 1;
	int ended = 0;
	while (!ended && length < size && (n = rpl_read(fd, buffer + length, size - length < 512 ? size - length : 512)) > 0) {
		length += n;
		ended = rpl_classify_cpu(buffer, length, 0, c);
	}
	if (!ended && n > 0) { char probe; n = rpl_read(fd, &probe, 1); }  /* a full buffer: is that the whole file? */
	if (!ended && n == 0) rpl_classify_cpu(buffer, length, 1, c);      /* the end of the file: its last line counts too */
	else if (!ended) c->cpu_known = 0;
	rpl_close(fd);
}

static int rpl_holds(unsigned char rule, unsigned char value)
{
	return rule == RPL_ANY || rule == value;
}

/* The first row of the generated rule table whose every condition holds. */
static const struct rpl_rule *rpl_match(const struct rpl_conditions *c)
{
	long rows = sizeof rpl_rules / sizeof rpl_rules[0];
	for (long i = 0; i < rows; i++) {
		const struct rpl_rule *rule = &rpl_rules[i];
		if (rpl_holds(rule->spectre, c->spectre) && rpl_holds(rule->cpu_known, c->cpu_known) && rpl_holds(rule->spectre_bug, c->spectre_bug)
			&& rpl_holds(rule->mechanism, c->mechanism) && rpl_holds(rule->addition, c->addition)
			&& rpl_holds(rule->hardware_flag, c->hardware_flag) && rpl_holds(rule->amd_family, c->amd_family))
			return rule;
	}
	return &rpl_rules[rows - 1];
}

/*
 * The host rules. When the spectre_v2 line alone fixes the vendor — every rule the four CPU facts could still reach
 * gives the same one (HostRules.SpectreLineDecides) — /proc/cpuinfo is not read at all: formatting a CPU's block is
 * the routine's most expensive step. The reason is then that rule's, or RPL_SPECTRE_LINE_REASON when several agree.
 */
static void rpl_decide(struct retpoline_runtime_record *r, unsigned char *vendor, const char **reason)
{
	char buffer[RPL_CPUINFO_LIMIT];
	struct rpl_conditions c = { RPL_SPECTRE_UNREADABLE, 0, 0, RPL_MECHANISM_OTHER, RPL_ADDITION_NOTHING, 0, 0 };
	int complete;
	long n = rpl_read_file(RPL_ROOT "/sys/devices/system/cpu/vulnerabilities/spectre_v2", buffer, sizeof buffer, &complete);
	if (n >= 0 && complete) rpl_classify_spectre(buffer, n, &c, r);   /* sysfs text is at most a page */

	const struct rpl_rule *first = 0;
	int same_vendor = 1, same_rule = 1;
	for (int facts = 0; facts < 16; facts++) {
		struct rpl_conditions any = c;
		any.cpu_known = facts & 1;
		any.spectre_bug = (facts >> 1) & 1;
		any.hardware_flag = (facts >> 2) & 1;
		any.amd_family = (facts >> 3) & 1;
		const struct rpl_rule *rule = rpl_match(&any);
		if (!first) first = rule;
		same_vendor &= rule->vendor == first->vendor;
		same_rule &= rule == first;
	}
	if (same_vendor) {
		*vendor = first->vendor;
		*reason = same_rule ? first->reason : RPL_SPECTRE_LINE_REASON;
		return;
	}
	rpl_read_cpu(RPL_ROOT "/proc/cpuinfo", buffer, sizeof buffer, &c);
	const struct rpl_rule *rule = rpl_match(&c);
	*vendor = rule->vendor;
	*reason = rule->reason;
}

/* ---- the write --------------------------------------------------------------------------------------------------- */

/* Padding the assembler or linker puts between two thunk sections: int3, or the multi-byte NOPs GNU as and ld emit
   ([66...] [2e] 0f 1f /0 with a zero displacement, [66...] 90). Nothing in it ever runs. */
static int rpl_padding(const unsigned char *p, long length)
{
	static const unsigned char nops[][8] = {
		{ 3, 0x0f, 0x1f, 0x00 }, { 4, 0x0f, 0x1f, 0x40, 0x00 }, { 5, 0x0f, 0x1f, 0x44, 0x00, 0x00 },
		{ 7, 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00 },
	};
	long i = 0;
	while (i < length) {
		if (p[i] == 0xcc || p[i] == 0x90) { i++; continue; }
		long j = i;
		while (j < length && p[j] == 0x66) j++;
		if (j < length && p[j] == 0x2e) j++;
		if (j < length && p[j] == 0x90 && j > i) { i = j + 1; continue; }
		/* 0f 1f 84 00 00 00 00 00 is the 7-byte form with a SIB byte */
		if (j + 8 <= length && p[j] == 0x0f && p[j + 1] == 0x1f && p[j + 2] == 0x84 && rpl_same_bytes(p + j + 3, (const unsigned char *)"\0\0\0\0\0", 5)) { i = j + 8; continue; }
		long k = 0;
		for (; k < (long)(sizeof nops / sizeof nops[0]); k++)
			if (j + nops[k][0] <= length && rpl_same_bytes(p + j, nops[k] + 1, nops[k][0])) break;
		if (k == (long)(sizeof nops / sizeof nops[0])) return 0;
		i = j + nops[k][0];
	}
	return 1;
}

/* pwrite64 through /proc/self/mem; 0 or -errno. */
static long rpl_write(int fd, const unsigned char *bytes, long length, const unsigned char *at)
{
	long n = rpl_syscall4(RPL_SYS_PWRITE64, fd, (long)bytes, length, (long)at);
	if (n == length) return 0;
	return n < 0 ? n : -5; /* a short write: EIO */
}

#define RPL_RUN_BYTES 2048

/*
 * Rewrites every thunk that holds exactly the Generic body linked in, for vendor; a thunk holding anything else is
 * left alone. Thunks that follow each other with nothing but padding between them are written with one pwrite (the
 * padding written back as it is): a system call costs more than the bytes. On any failure every thunk written so far
 * gets its Generic body back.
 */
static void rpl_patch(struct retpoline_runtime_record *r, unsigned char vendor)
{
	/* The thunks to write, in address order. */
	unsigned char order[RPL_THUNK_COUNT];
	long count = 0;
	for (long i = 0; i < RPL_THUNK_COUNT; i++) {
		const unsigned char *now = rpl_thunk_addresses[i];
		if (rpl_same_bytes(now, rpl_thunk_forms[i][vendor], RPL_THUNK_BODY)) { r->unchanged++; continue; }
		if (!rpl_same_bytes(now, rpl_thunk_forms[i][RPL_VENDOR_GENERIC], RPL_THUNK_BODY)) { r->left_alone++; continue; }
		long at = count++;
		while (at > 0 && rpl_thunk_addresses[order[at - 1]] > now) { order[at] = order[at - 1]; at--; }
		order[at] = (unsigned char)i;
	}
	if (count == 0) { r->chosen = vendor; return; }

	int fd = rpl_open("/proc/self/mem", RPL_O_RDWR);
	if (fd < 0) { r->error = -fd; return; }   /* ENOENT: no /proc; EROFS, EACCES: mounted or confined against writes */
	unsigned char run[RPL_RUN_BYTES];
	long failure = 0, done = 0, written = 0;
	while (done < count && failure == 0) {
		/* The longest run from order[done] whose gaps are padding and which fits the buffer. */
		const unsigned char *start = rpl_thunk_addresses[order[done]];
		long last = done;
		while (last + 1 < count) {
			const unsigned char *end = rpl_thunk_addresses[order[last]] + RPL_THUNK_BODY, *next = rpl_thunk_addresses[order[last + 1]];
			if (next < end || next + RPL_THUNK_BODY - start > RPL_RUN_BYTES || !rpl_padding(end, next - end)) break;
			last++;
		}
		long length = rpl_thunk_addresses[order[last]] + RPL_THUNK_BODY - start;
		for (long b = 0; b < length; b++) run[b] = start[b];
		for (long k = done; k <= last; k++) {
			unsigned char *body = run + (rpl_thunk_addresses[order[k]] - start);
			for (long b = 0; b < RPL_THUNK_BODY; b++) body[b] = rpl_thunk_forms[order[k]][vendor][b];
		}
		failure = rpl_write(fd, run, length, start);
		if (failure == 0) written = last + 1;
		done = last + 1;   /* a failed run may be partly written: it is rolled back with the others */
	}
	if (failure != 0) {
		r->error = (int)-failure;
		for (long k = 0; k < done; k++)
			rpl_write(fd, rpl_thunk_forms[order[k]][RPL_VENDOR_GENERIC], RPL_THUNK_BODY, rpl_thunk_addresses[order[k]]);
		if (written > 0) r->flags |= RPL_RUN_ROLLED_BACK;
	} else {
		r->patched = (unsigned short)count;
		r->chosen = vendor;
	}
	rpl_close(fd);
}

static void rpl_decided(struct retpoline_runtime_record *r, const char *by)
{
	long length = 0;
	while (by[length]) length++;
	rpl_copy(r->decided_by, sizeof r->decided_by, by, length);
}

/* glibc calls initializers with (argc, argv, envp); other C libraries call them with nothing. */
static void retpoline_runtime_start(int argc, char **argv, char **envp)
{
	(void)argc;
	(void)argv;
	struct retpoline_runtime_record *r = &retpoline_runtime_record;
	if (r->state) return;
	r->state = 1;
	unsigned char minimum = r->minimum < RPL_VENDOR_COUNT ? r->minimum : RPL_VENDOR_GENERIC;

	/* The environment can only strengthen, so AT_SECURE matters only when it says something. */
#ifdef __GLIBC__
	int environment = envp ? rpl_environment_array(envp) : rpl_environment_file();
#else
	(void)envp;
	int environment = rpl_environment_file();
#endif
	if (environment < 0) { r->error = -environment; rpl_decided(r, "no-proc"); return; }
	if (environment != 0) {
		int secure = rpl_secure();
		if (secure < 0) { r->error = -secure; rpl_decided(r, "no-proc"); return; }
		if (secure) r->flags |= RPL_RUN_SECURE;
		else {
			r->flags |= (unsigned int)environment;
			if (environment & RPL_RUN_ENV_GENERIC) { rpl_decided(r, "environment"); return; }
		}
	}

	unsigned char host;
	const char *reason;
	rpl_decide(r, &host, &reason);
	r->host = host;
	long reason_length = 0;
	while (reason_length < (long)sizeof r->reason && reason[reason_length]) reason_length++;
	rpl_copy(r->reason, sizeof r->reason, reason, reason_length);
	unsigned char vendor = host < minimum ? host : minimum;
	rpl_decided(r, vendor == host ? "host" : "minimum");
	if (vendor == RPL_VENDOR_GENERIC) return;
	rpl_patch(r, vendor);
	if (r->chosen != vendor) rpl_decided(r, r->error == RPL_ENOENT ? "no-proc" : "write-refused");
}

#ifdef RETPOLINE_RUNTIME_SHARED
/* A shared library: the earliest .init_array slot (priority 0 sorts before every constructor priority). */
__attribute__((section(".init_array.00000"), used, aligned(8)))
#else
/* An executable: .preinit_array runs before any shared library's constructor. */
__attribute__((section(".preinit_array"), used, aligned(8)))
#endif
static void (*const retpoline_runtime_entry)(int, char **, char **) = retpoline_runtime_start;

#endif /* RETPOLINE_RUNTIME_MINIMUM != RPL_VENDOR_GENERIC */

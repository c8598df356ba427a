/*
 * What every run-time test program shares: the record's layout (written out again here: the test is its own witness
 * of what native/retpoline_runtime.c defines and `retpoline status` reads), the thunks by their hidden symbols, a
 * dispatch table called through them, and one report of all three on stdout.
 */
#ifndef PROBE_H
#define PROBE_H
#include <stdio.h>
#include <string.h>

/* native/retpoline_runtime.c's record. */
struct record {
	char magic[8];
	unsigned int size;
	unsigned char state, minimum, host, chosen;
	unsigned int flags;
	int error;
	unsigned short thunks, patched, unchanged, left_alone;
	char decided_by[16], reason[24], mechanism[48];
};
#ifndef PROBE_NO_RECORD
extern struct record retpoline_runtime_record __attribute__((visibility("hidden")));
#else
/* Built without the routine (-DPROBE_NO_RECORD): an empty record of our own, under another name. */
#define retpoline_runtime_record probe_no_record
static struct record retpoline_runtime_record;
#endif

#define THUNK(reg) extern const unsigned char __x86_indirect_thunk_##reg[] __attribute__((visibility("hidden"))); \
	extern const unsigned char __x86_indirect_thunk_nt_##reg[] __attribute__((visibility("hidden")));
THUNK(rax) THUNK(rbx) THUNK(rcx) THUNK(rdx) THUNK(rsi) THUNK(rdi) THUNK(rbp) THUNK(r8) THUNK(r9) THUNK(r10) THUNK(r11)
THUNK(r12) THUNK(r13) THUNK(r14) THUNK(r15)
#define ENTRY(reg) { "__x86_indirect_thunk_" #reg, __x86_indirect_thunk_##reg }, { "__x86_indirect_thunk_nt_" #reg, __x86_indirect_thunk_nt_##reg },
static const struct { const char *name; const unsigned char *at; } thunks[] = {
	ENTRY(rax) ENTRY(rbx) ENTRY(rcx) ENTRY(rdx) ENTRY(rsi) ENTRY(rdi) ENTRY(rbp) ENTRY(r8) ENTRY(r9) ENTRY(r10) ENTRY(r11)
	ENTRY(r12) ENTRY(r13) ENTRY(r14) ENTRY(r15)
};

typedef int (*op_fn)(int);
static int twice(int x) { return 2 * x; }
static int plus3(int x) { return x + 3; }
static op_fn ops[2] = { twice, plus3 };

static void probe_report(const char *who)
{
	const struct record *r = &retpoline_runtime_record;
	printf("%s record %.7s size=%u state=%u minimum=%u host=%u chosen=%u flags=0x%x error=%d thunks=%u patched=%u unchanged=%u left_alone=%u decided_by=%s reason=%s mechanism=%s\n",
		who, r->magic, r->size, r->state, r->minimum, r->host, r->chosen, r->flags, r->error, r->thunks, r->patched, r->unchanged,
		r->left_alone, r->decided_by, r->reason, r->mechanism);
	for (unsigned i = 0; i < sizeof thunks / sizeof thunks[0]; i++) {
		printf("%s thunk %s", who, thunks[i].name);
		for (int b = 0; b < 17; b++) printf(" %02x", thunks[i].at[b]);
		printf("\n");
	}
	int acc = 1;
	for (int i = 0; i < 10; i++) acc = ops[i & 1](acc);
	printf("%s dispatch %d\n", who, acc);
	fflush(stdout);
}

/* The record and every thunk's first 17 bytes, for a caller that reads them rather than the report. */
static __attribute__((unused)) int probe_copy(unsigned char *record, unsigned char *bodies)
{
	memcpy(record, &retpoline_runtime_record, sizeof retpoline_runtime_record);
	for (unsigned i = 0; i < sizeof thunks / sizeof thunks[0]; i++) memcpy(bodies + 17 * i, thunks[i].at, 17);
	return (int)(sizeof thunks / sizeof thunks[0]);
}

static __attribute__((unused)) int probe_dispatch(int rounds)
{
	int acc = 1;
	for (int i = 0; i < rounds; i++) acc = ops[i & 1](acc);
	return acc;
}

#endif

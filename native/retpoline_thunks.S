/*
 * retpoline_thunks.S — the external thunks that retpoline-compiled code calls (Retpoline.Sdk links this into every
 * executable and shared library it builds).
 *
 * GCC -mindirect-branch=thunk-extern -mindirect-branch-register and Clang -mretpoline-external-thunk replace every
 * `call *%reg` / `jmp *%reg` with a direct call or jump to __x86_indirect_thunk_<reg>; GCC with -fcf-protection calls
 * __x86_indirect_thunk_nt_<reg> for `notrack` branches; -mfunction-return=thunk-extern turns `ret` into
 * `jmp __x86_return_thunk`. The bodies here are the Generic retpoline in GCC's exact 17-byte layout, which
 * `retpoline patch` (and the SDK after link) rewrites in place for the chosen vendor.
 *
 * Registers: the 15 a compiler can name. rsp is absent: it cannot hold a branch target while the thunk itself uses
 * the stack, and neither GCC nor LLVM ever calls a thunk for it.
 *
 * Every thunk is hidden (a shared library must not export it: another object could interpose it) and sits in its own
 * section so --gc-sections drops the ones nothing calls.
 *
 * CET: the .note.gnu.property at the end claims IBT and deliberately NOT SHSTK. The linker marks a binary with a
 * feature only when every input object has it, so:
 *   - IBT: thunks are entered by direct call/jmp (no endbr64 needed), and the branches the patched forms make
 *     (`jmp *%reg` to endbr64-marked code, `notrack jmp` for the _nt_ thunks) are what IBT expects; claiming IBT
 *     keeps -fcf-protection builds IBT-marked.
 *   - SHSTK: the generic body's `mov %reg,(%rsp); ret` returns to an address the call did not push, which faults
 *     under CET shadow stacks, so a binary with these thunks must never be marked shadow-stack compatible.
 */

.macro RETPOLINE_THUNK name, reg
	.section .text.\name,"ax",@progbits
	.globl	\name
	.hidden	\name
	.type	\name,@function
	.p2align 4
\name:
	call	1f		/* push the address of the trap below and jump over it */
2:	pause			/* speculation of the ret lands here ... */
	lfence			/* ... and is stopped: it can never reach an attacker-trained target */
	jmp	2b
1:	mov	%\reg,(%rsp)	/* replace the return address with the real target */
	ret			/* architecturally "return" to the target; predicted from the RSB (the trap) */
	.size	\name, .-\name
.endm

	/* The register list is generated from the engine's (X86/Registers.cs ThunkRegisters): a test keeps them equal. */
.irp reg, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15
	RETPOLINE_THUNK __x86_indirect_thunk_\reg, \reg
	RETPOLINE_THUNK __x86_indirect_thunk_nt_\reg, \reg
.endr

	/* -mfunction-return=thunk-extern: `ret` becomes `jmp __x86_return_thunk`. Plain return, int3 against
	   straight-line speculation past it. */
	.section .text.__x86_return_thunk,"ax",@progbits
	.globl	__x86_return_thunk
	.hidden	__x86_return_thunk
	.type	__x86_return_thunk,@function
	.p2align 4
__x86_return_thunk:
	ret
	int3
	.size	__x86_return_thunk, .-__x86_return_thunk

	.section .note.GNU-stack,"",@progbits

	.section .note.gnu.property,"a",@note
	.p2align 3
	.long	4		/* n_namesz: "GNU\0" */
	.long	16		/* n_descsz: one 8-byte-aligned property */
	.long	5		/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.long	0xc0000002	/* GNU_PROPERTY_X86_FEATURE_1_AND */
	.long	4		/* pr_datasz */
	.long	1		/* GNU_PROPERTY_X86_FEATURE_1_IBT only; bit 1 (SHSTK) stays clear */
	.p2align 3

/*
 * retpoline.h — mark a hand-written indirect branch as intentional and reviewed.
 *
 * Retpoline.Sdk verifies that every indirect call/jmp in your binary goes through a retpoline thunk. Some
 * hand-written assembly has to branch indirectly on purpose (a JIT trampoline, a coroutine switch that you have
 * reviewed). Put RETPOLINE_SAFE immediately before that one instruction: verify then lists it as class
 * `Annotated` instead of failing, and fails (RPL0004) if the mark does not sit on an indirect call or jump.
 * This is objtool's ANNOTATE_RETPOLINE_SAFE for user space; prefer it to RetpolineAllow, which waives a whole
 * function, whenever you can edit the source.
 *
 * How: a local label on the next instruction, whose absolute address goes into the non-allocated section
 * `.retpoline_safe` (8 bytes per mark). Non-allocated means it is never loaded and changes no address.
 *
 *   C / C++ (a string to paste in front of the instruction in inline asm):
 *     __asm__ volatile(RETPOLINE_SAFE "call *%0" : : "r"(fn) : "memory");
 *
 *   Assembly (.S, run through the C preprocessor):
 *     RETPOLINE_SAFE
 *     jmp *%rdx
 */
#ifndef RETPOLINE_H
#define RETPOLINE_H

#ifdef __ASSEMBLER__

.macro RETPOLINE_SAFE
	.Lretpoline_safe_\@:
	.pushsection .retpoline_safe,"",@progbits
	.balign 8
	.quad .Lretpoline_safe_\@
	.popsection
.endm

#else

#define RETPOLINE_SAFE \
	"999:\n\t" \
	".pushsection .retpoline_safe,\"\",@progbits\n\t" \
	".balign 8\n\t" \
	".quad 999b\n\t" \
	".popsection\n\t"

#endif

#endif /* RETPOLINE_H */

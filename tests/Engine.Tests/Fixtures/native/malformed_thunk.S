/* Engine test fixture: a thunk whose body is no retpoline form at all (RPL0011); patch refuses the file (RPL0016). */
	.section .text.__x86_indirect_thunk_rdx,"ax",@progbits
	.globl	__x86_indirect_thunk_rdx
	.hidden	__x86_indirect_thunk_rdx
	.type	__x86_indirect_thunk_rdx, @function
__x86_indirect_thunk_rdx:
	push	%rdx			/* a "thunk" that returns to its target: unprotected, and unknown to patch */
	ret
	.fill	15, 1, 0xcc
	.size	__x86_indirect_thunk_rdx, .-__x86_indirect_thunk_rdx

	.section .note.GNU-stack,"",@progbits

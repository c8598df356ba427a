/* Engine test fixture: a shared library that exports a thunk with default visibility (no .hidden).
 * Another object loaded first can interpose it, so verify warns RPL0013. Body: the generic retpoline. */
	.section .text.__x86_indirect_thunk_rax,"ax",@progbits
	.globl	__x86_indirect_thunk_rax
	.type	__x86_indirect_thunk_rax, @function
__x86_indirect_thunk_rax:
	call	1f
2:	pause
	lfence
	jmp	2b
1:	mov	%rax, (%rsp)
	ret
	.size	__x86_indirect_thunk_rax, .-__x86_indirect_thunk_rax

	.section .note.GNU-stack,"",@progbits

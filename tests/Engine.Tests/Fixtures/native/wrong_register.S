/* Engine test fixture: thunks whose names promise one register while the body branches through another.
 * Every caller of __x86_indirect_thunk_rax would land on whatever %rbx holds: verify must report RPL0012
 * for both, and patch must refuse the whole file (RPL0016) without writing a byte. */
	.section .text.__x86_indirect_thunk_rax,"ax",@progbits
	.globl	__x86_indirect_thunk_rax
	.hidden	__x86_indirect_thunk_rax
	.type	__x86_indirect_thunk_rax, @function
__x86_indirect_thunk_rax:		/* Generic body, GCC layout, but the mov stores %rbx */
	call	1f
2:	pause
	lfence
	jmp	2b
1:	mov	%rbx, (%rsp)
	ret
	.size	__x86_indirect_thunk_rax, .-__x86_indirect_thunk_rax

	.section .text.__x86_indirect_thunk_rcx,"ax",@progbits
	.globl	__x86_indirect_thunk_rcx
	.hidden	__x86_indirect_thunk_rcx
	.type	__x86_indirect_thunk_rcx, @function
__x86_indirect_thunk_rcx:		/* the Amd form, jumping through %rbx instead of %rcx */
	lfence
	jmp	*%rbx
	int3
	.size	__x86_indirect_thunk_rcx, .-__x86_indirect_thunk_rcx

	.section .note.GNU-stack,"",@progbits

/* Engine test fixture: a thunk already in the None form (jmp *%rax) whose symbol is only 2 bytes long, with the
 * next function right behind it. Verify accepts the form; patch to Generic or Amd must refuse the whole file
 * (RPL0016): the 17-byte or 5-byte form would overwrite `after`. */
	.text
	.globl	__x86_indirect_thunk_rax
	.hidden	__x86_indirect_thunk_rax
	.type	__x86_indirect_thunk_rax, @function
__x86_indirect_thunk_rax:
	jmp	*%rax
	.size	__x86_indirect_thunk_rax, .-__x86_indirect_thunk_rax

	.globl	after
	.type	after, @function
after:
	ret
	.size	after, .-after

	.section .note.GNU-stack,"",@progbits

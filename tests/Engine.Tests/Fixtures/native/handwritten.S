/* Engine test fixture: hand-written indirect branches that no compiler flag can protect.
 * Each sits in its own named function; assembled with -g, so .debug_line maps each to its line here.
 * VerifyTests expect exactly these four UserCode findings (found by the marker comments "RPL:" below),
 * and FixtureSet gets each function's address from nm. */
	.text

	.globl	asm_call_rax
	.type	asm_call_rax, @function
asm_call_rax:
	.cfi_startproc
	call	*%rax			/* RPL: asm_call_rax */
	ret
	.cfi_endproc
	.size	asm_call_rax, .-asm_call_rax

	.globl	asm_jmp_mem
	.type	asm_jmp_mem, @function
asm_jmp_mem:
	.cfi_startproc
	jmp	*(%rax)			/* RPL: asm_jmp_mem */
	.cfi_endproc
	.size	asm_jmp_mem, .-asm_jmp_mem

	.globl	asm_notrack_jmp
	.type	asm_notrack_jmp, @function
asm_notrack_jmp:
	.cfi_startproc
	notrack jmp	*%rdx		/* RPL: asm_notrack_jmp */
	.cfi_endproc
	.size	asm_notrack_jmp, .-asm_notrack_jmp

	/* long asm_jump_table(unsigned long k): a position-independent jump table, k in 0..3. */
	.globl	asm_jump_table
	.type	asm_jump_table, @function
asm_jump_table:
	.cfi_startproc
	andl	$3, %edi
	leaq	.Ltable(%rip), %rax
	movslq	(%rax,%rdi,4), %rdx
	addq	%rax, %rdx
	jmp	*%rdx			/* RPL: asm_jump_table */
.Lcase0:
	movl	$10, %eax
	ret
.Lcase1:
	movl	$20, %eax
	ret
.Lcase2:
	movl	$30, %eax
	ret
.Lcase3:
	movl	$40, %eax
	ret
	.cfi_endproc
	.size	asm_jump_table, .-asm_jump_table

	.section .rodata
	.p2align 2
.Ltable:
	.long	.Lcase0-.Ltable
	.long	.Lcase1-.Ltable
	.long	.Lcase2-.Ltable
	.long	.Lcase3-.Ltable

	.section .note.GNU-stack,"",@progbits

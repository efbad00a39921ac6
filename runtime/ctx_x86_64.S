/* weft — context switch for x86-64 System V.
 *
 * The callee-saved registers (rbx, rbp, r12-r15) are pushed on the running
 * stack, the stack pointer is stored in from->sp, and the same is undone from
 * to->sp. The return address already on the stack resumes the other side.
 * A new context starts in weft__ctx_start with r12 = arg and r13 = entry. */

	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, @function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	weft__ctx_switch, .-weft__ctx_switch

	.globl	weft__ctx_jump
	.hidden	weft__ctx_jump
	.type	weft__ctx_jump, @function
	.p2align 4
weft__ctx_jump:
	.cfi_startproc
	movq	(%rdi), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	weft__ctx_jump, .-weft__ctx_jump

	.globl	weft__ctx_start
	.hidden	weft__ctx_start
	.type	weft__ctx_start, @function
	.p2align 4
weft__ctx_start:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	weft__ctx_start, .-weft__ctx_start

	.section .note.GNU-stack,"",@progbits

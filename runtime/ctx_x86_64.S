/* weft — context switch for x86-64 System V.
 *
 * The callee-saved registers (rbx, rbp, r12-r15) are pushed on the running
 * stack, the stack pointer is stored in from->sp, and the same is undone from
 * to->sp. The return address already on the stack resumes the other side,
 * with the value handed over in eax: what its own switch call returns.
 * A context made by weft__ctx_make starts in weft__ctx_start with r12 = arg
 * and r13 = entry; weft__ctx_switch_start and weft__ctx_jump_start instead
 * call the entry straight on the new stack, with nothing written to it
 * first, from weft__ctx_boot. */

/* The saved frame: one layout, pushed by every switch that saves and popped
 * by every one that resumes. */
	.macro	save_callee
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	.endm
	.macro	restore_callee
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	.endm

	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, @function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	save_callee
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	movl	%edx, %eax
	restore_callee
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
	movl	%esi, %eax
	restore_callee
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

/* void weft__ctx_switch_start(weft__ctx *from, char *hi,
 *                             void (*entry)(void *), void *arg):
 * saves the running context like weft__ctx_switch, then boots entry(arg) on
 * the stack whose top is hi. */
	.globl	weft__ctx_switch_start
	.hidden	weft__ctx_switch_start
	.type	weft__ctx_switch_start, @function
	.p2align 4
weft__ctx_switch_start:
	.cfi_startproc
	save_callee
	movq	%rsp, (%rdi)
	andq	$-16, %rsi
	movq	%rsi, %rsp
	movq	%rcx, %rdi
	xorl	%ebp, %ebp
	jmp	weft__ctx_boot
	.cfi_endproc
	.size	weft__ctx_switch_start, .-weft__ctx_switch_start

/* void weft__ctx_jump_start(char *hi, void (*entry)(void *), void *arg):
 * boots entry(arg) on the stack whose top is hi, saving nothing; the running
 * stack may be that very stack (a finished task's, handed on). */
	.globl	weft__ctx_jump_start
	.hidden	weft__ctx_jump_start
	.type	weft__ctx_jump_start, @function
	.p2align 4
weft__ctx_jump_start:
	.cfi_startproc
	andq	$-16, %rdi
	movq	%rdi, %rsp
	movq	%rdx, %rdi
	movq	%rsi, %rdx
	xorl	%ebp, %ebp
	jmp	weft__ctx_boot
	.cfi_endproc
	.size	weft__ctx_jump_start, .-weft__ctx_jump_start

/* rsp is 16-byte aligned here, as the ABI wants before a call; the entry
 * never returns. rbp = 0 and an undefined return address end backtraces. */
	.type	weft__ctx_boot, @function
	.p2align 4
weft__ctx_boot:
	.cfi_startproc
	.cfi_undefined rip
	callq	*%rdx
	ud2
	.cfi_endproc
	.size	weft__ctx_boot, .-weft__ctx_boot

	.section .note.GNU-stack,"",@progbits

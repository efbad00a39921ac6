/* weft — context switch for AArch64 (AAPCS64).
 *
 * x19-x28, the frame pointer x29, the link register x30 and the low halves of
 * v8-v15 (d8-d15) are callee-saved: they are stored in a 160-byte frame on the
 * running stack, sp goes to from->sp, and the same is undone from to->sp;
 * the other side resumes with the value handed over in w0.
 * A context made by weft__ctx_make starts in weft__ctx_start with x19 = arg
 * and x20 = entry; weft__ctx_switch_start and weft__ctx_jump_start instead
 * call the entry straight on the new stack, with nothing written to it
 * first, from weft__ctx_boot. */

/* The saved frame, stored by every switch that saves; weft__ctx_restore
 * loads the same layout. */
	.macro	save_frame
	sub	sp, sp, #160
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	.endm

	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, %function
	.p2align 4
weft__ctx_switch:
	save_frame
	mov	x9, sp
	str	x9, [x0]
	ldr	x9, [x1]
	mov	sp, x9
	mov	w0, w2
weft__ctx_restore:
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #160
	ret
	.size	weft__ctx_switch, .-weft__ctx_switch

	.globl	weft__ctx_jump
	.hidden	weft__ctx_jump
	.type	weft__ctx_jump, %function
	.p2align 4
weft__ctx_jump:
	ldr	x9, [x0]
	mov	sp, x9
	mov	w0, w1
	b	weft__ctx_restore
	.size	weft__ctx_jump, .-weft__ctx_jump

	.globl	weft__ctx_start
	.hidden	weft__ctx_start
	.type	weft__ctx_start, %function
	.p2align 4
weft__ctx_start:
	mov	x0, x19
	blr	x20
	brk	#0
	.size	weft__ctx_start, .-weft__ctx_start

/* void weft__ctx_switch_start(weft__ctx *from, char *hi,
 *                             void (*entry)(void *), void *arg):
 * saves the running context like weft__ctx_switch, then boots entry(arg) on
 * the stack whose top is hi. */
	.globl	weft__ctx_switch_start
	.hidden	weft__ctx_switch_start
	.type	weft__ctx_switch_start, %function
	.p2align 4
weft__ctx_switch_start:
	save_frame
	mov	x9, sp
	str	x9, [x0]
	and	x1, x1, #~15
	mov	sp, x1
	mov	x0, x3
	b	weft__ctx_boot
	.size	weft__ctx_switch_start, .-weft__ctx_switch_start

/* void weft__ctx_jump_start(char *hi, void (*entry)(void *), void *arg):
 * boots entry(arg) on the stack whose top is hi, saving nothing; the running
 * stack may be that very stack (a finished task's, handed on). */
	.globl	weft__ctx_jump_start
	.hidden	weft__ctx_jump_start
	.type	weft__ctx_jump_start, %function
	.p2align 4
weft__ctx_jump_start:
	and	x0, x0, #~15
	mov	sp, x0
	mov	x0, x2
	mov	x2, x1
	b	weft__ctx_boot
	.size	weft__ctx_jump_start, .-weft__ctx_jump_start

/* sp is 16-byte aligned; the entry never returns. x29 = 0 ends
 * frame-pointer walks. */
	.type	weft__ctx_boot, %function
	.p2align 4
weft__ctx_boot:
	mov	x29, #0
	blr	x2
	brk	#0
	.size	weft__ctx_boot, .-weft__ctx_boot

	.section .note.GNU-stack,"",%progbits

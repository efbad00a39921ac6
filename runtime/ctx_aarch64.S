/* weft — context switch for AArch64 (AAPCS64).
 *
 * x19-x28, the frame pointer x29, the link register x30 and the low halves of
 * v8-v15 (d8-d15) are callee-saved: they are stored in a 160-byte frame on the
 * running stack, sp goes to from->sp, and the same is undone from to->sp.
 * A new context starts in weft__ctx_start with x19 = arg and x20 = entry. */

	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, %function
	.p2align 4
weft__ctx_switch:
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
	mov	x9, sp
	str	x9, [x0]
	ldr	x9, [x1]
	mov	sp, x9
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

	.section .note.GNU-stack,"",%progbits

"""Device math shared by the Triton kernels."""

from __future__ import annotations

import triton
import triton.language as tl

from kernels._dispatch import triton_interpreted

__all__ = ["exp_ftz"]

if triton_interpreted():  # decided at import, as triton.jit decides whether to interpret

    @triton.jit
    def exp_ftz(x):
        """e^x in fp32 (the interpreter's numpy exp)."""
        return tl.exp(x.to(tl.float32))

else:

    @triton.jit
    def exp_ftz(x):
        """e^x of an fp32 tensor as one ``ex2.approx.ftz`` (a MUFU.EX2) after the scaling by log2(e). ``tl.exp``
        takes ``ex2.approx`` without ftz, which ptxas wraps in a range test and two predicated multiplies for
        results below 2^-126 (five instructions per exp instead of two; kernels/NOTES.md 56). Results that small
        flush to zero here, which no decay factor of these kernels can tell from 1e-38. ``x`` is taken to fp32
        first (a no-op for the fp32 decays every caller passes): the instruction reads 32-bit registers."""
        return tl.inline_asm_elementwise(
            "ex2.approx.ftz.f32 $0, $1;", "=r,r", [x.to(tl.float32) * 1.4426950408889634], dtype=tl.float32, is_pure=True,
            pack=1,
        )

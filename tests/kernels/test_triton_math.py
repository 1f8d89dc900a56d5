"""``kernels._triton_math.exp_ftz`` against ``torch.exp`` (in float64): the one-instruction exp every chunked kernel's
decays take (kernels/NOTES.md 56, 60, 61). The interpreter runs ``tl.exp`` in its place; the GPU case checks the
``ex2.approx.ftz`` instruction itself."""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from kernels._triton_math import exp_ftz


@triton.jit
def _exp_kernel(x, y, N, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < N
    tl.store(y + o, exp_ftz(tl.load(x + o, mask=m, other=0.0)), mask=m)


def _exp(x: torch.Tensor) -> torch.Tensor:
    y = torch.empty(x.shape, device=x.device, dtype=torch.float32)  # NaN-filled in these tests (conftest)
    _exp_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
    return y


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    ref = torch.exp(x.double())
    normal = ref >= 2.0**-126  # results below it flush to zero on the GPU (ftz), or stay subnormal in numpy
    assert torch.isfinite(y).all()
    rel = ((y.double() - ref).abs() / ref)[normal]
    # ex2.approx's own error (2^-22) plus the rounding of x · log2(e), which grows with |x| (tl.exp takes the same)
    assert rel.max().item() <= 1e-5, rel.max().item()
    assert (y.double()[~normal] <= 2.0**-126).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_exp_ftz_matches_torch(dtype, device):
    """Fresh random exponents over the range the decays reach (−87 … 10, 1001 of them: a partial last block),
    in fp32 and bf16 (taken to fp32 first); the output pre-filled with NaN."""
    x = (torch.rand(1001, device=device) * 97.0 - 87.0).to(dtype)
    _check(x, _exp(x))


@pytest.mark.gpu
def test_exp_ftz_flushes_only_below_normal_gpu():
    """On the GPU: 1 at 0 and at −1e-30, zero for −inf and for results below 2^-126 (e^-88 ≈ 6e-39 and e^-100 are
    subnormal, so flushed), +inf for +inf."""
    x = torch.tensor([0.0, -1e-30, float("-inf"), -88.0, -100.0, float("inf")], device="cuda")
    assert _exp(x).cpu().tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, float("inf")]

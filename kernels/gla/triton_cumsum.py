"""Chunk-local cumulative log-decay in Triton: the ``G`` that the chunked GLA and delta-rule kernels read.

Same contract as :func:`kernels.gla.naive.naive_chunk_local_cumsum`: ``g [B, T, H, K]`` (any float dtype) →
``G [B, NT·BT, H, K]`` fp32, the inclusive sum of ``g`` from each chunk's first step, time padded to whole chunks
with a zero log-decay (``G`` flat over the padding). One pass: each program reads ``R`` rows (whole chunks) of one
K block, converts them to fp32, sums within each chunk in registers and writes them once. torch's form is a dtype
copy and a scan along a strided dim; on the H200 its scan alone took 87 µs at B=16 T=2048 H=16 K=64, where reading
and writing the fp32 tensor once takes 64 µs at the measured copy rate (kernels/NOTES.md 56).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import cdiv, next_power_of_2, triton_interpreted
from kernels.gla.naive import naive_chunk_local_cumsum

__all__ = ["triton_chunk_local_cumsum"]

_ROWS = 64  # rows per program (whole chunks): [64, 64] fp32 at 4 warps, 32 values per thread
_MAX_BK = 64


@triton.jit(do_not_specialize=["T", "NT"])
def _chunk_local_cumsum(
    g, G, T, NT, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, R: tl.constexpr, BK: tl.constexpr,
):
    i_k, i_r, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    t = i_r * R + tl.arange(0, R)
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    # rows past T read as zero log-decay: the padded steps keep the chunk's last sum
    b_g = tl.load(g + ((i_b * T + t[:, None]) * H + i_h) * K + o_k[None, :], mask=(t[:, None] < T) & m_k[None, :],
                  other=0.0).to(tl.float32)
    b_G = tl.reshape(tl.cumsum(tl.reshape(b_g, [R // BT, BT, BK]), axis=1), [R, BK])
    tl.store(G + ((i_b * NT * BT + t[:, None]) * H + i_h) * K + o_k[None, :], b_G,
             mask=(t[:, None] < NT * BT) & m_k[None, :])


def triton_chunk_local_cumsum(g: Tensor, chunk_size: int) -> Tensor:
    """``G [B, NT·BT, H, K]`` fp32 from ``g [B, T, H, K]`` with chunks of ``chunk_size`` (a power of 2 ≥ 16), as
    :func:`~kernels.gla.naive.naive_chunk_local_cumsum`; that reference on a CPU tensor outside the interpreter."""
    if g.dim() != 4:
        raise ValueError(f"chunk_local_cumsum: g {tuple(g.shape)} must be [B, T, H, K]")
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_local_cumsum: chunk_size={chunk_size}; take a power of 2 of at least 16")
    if g.device.type == "cpu" and not triton_interpreted():
        return naive_chunk_local_cumsum(g, chunk_size)
    B, T, H, K = g.shape
    NT = cdiv(T, chunk_size)
    G = torch.empty(B, NT * chunk_size, H, K, device=g.device, dtype=torch.float32)
    if NT == 0 or K == 0:
        return G
    R = max(chunk_size, _ROWS)
    BK = 16 if triton_interpreted() else min(_MAX_BK, max(16, next_power_of_2(K)))
    _chunk_local_cumsum[(cdiv(K, BK), cdiv(NT * chunk_size, R), B * H)](
        g.contiguous(), G, T, NT, H=H, K=K, BT=chunk_size, R=R, BK=BK, num_warps=4,
    )
    return G

"""Generalized delta rule (RWKV-7's diagonal-plus-low-rank state transition).

``chunk_delta_rule`` runs whole sequences (training, prefill); ``delta_rule_step`` one decode step in
place. Layouts: ``[B, T, H, D]`` activations, ``[B, T, H, K]`` log-decay ``g`` and vectors ``a``,
``b``; ``[B, H, K, V]`` fp32 state. ``impl="triton"`` (``"auto"`` on CUDA) loads the Triton kernels
lazily. ``chunk_delta_rule`` runs the *chunked* (UT-transform) forward of ``kernels.delta_rule.triton_chunk``
when batch·heads are few (prefill, batch 1: the sequential walk over chunks is short and the rest is
parallel), and the *fused-recurrent* forward of ``kernels.delta_rule.triton_recurrent`` (a sequential walk
over T, one program per V block and batch·head) when batch·heads fill the GPU on their own
(:data:`FUSED_CHUNKED_MAX_BH`, kernels/NOTES.md 28, 52), no gradient is needed and the inputs are fp32; 16-bit
inputs without a gradient take the chunked forward at every batch·heads, its walk on operands of their dtype
(:data:`LEAN_WALK_DTYPES`, kernels/NOTES.md 54). Training (a gradient to track) always
takes the chunked pair: its backward (``kernels.delta_rule.triton_chunk_bwd``) is parallel over chunks, where the
fused-recurrent one (``kernels.delta_rule.triton_recurrent_bwd``) walks T backwards (H200, B = 8 T = 2048 H = 16
K = 64: 4.5 vs 11.8 ms forward + backward, kernels/NOTES.md 35).
``delta_rule_step`` runs the in-place step of ``kernels.delta_rule.triton_step``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels._dispatch import on_input_device, resolve_impl, tracks_grad
from kernels.delta_rule.naive import naive_chunk_delta_rule, naive_delta_rule_step, naive_recurrent_delta_rule

# Up to this many batch·heads the chunked Triton forward (its solve forming the scores, kernels/NOTES.md 38); above,
# the fused-recurrent one. H200, bf16: B·H = 128, K = V = 64, T = 2048: 987 µs at chunk 16 and 1226 µs at 32
# against the walk's 1260 µs (2026-12-01); at 256 the walk 1724 µs against 1780 µs at chunk 16 (kernels/NOTES.md 52).
FUSED_CHUNKED_MAX_BH = 128
# The chunk length when the caller leaves it open (``chunk_size=None``): the reference's, and the Triton pair's
# under autograd below AUTO_CHUNK_GRAD_16_MIN_BH batch·heads or above K = 64 (fwd + bwd within 3-4 % of chunk 16 at
# B=8 K=V=64 and B=4 K=V=128 before the walks' 3-stage tiles, kernels/NOTES.md 47).
DEFAULT_CHUNK = 32
# Under autograd at K ≤ 64, from this many batch·heads the Triton pair takes chunk 16. H200, bf16, H=16 K=V=64, fwd +
# bwd with the walks' 3-stage tiles (kernels/NOTES.md 62): B·H = 128 (B=8 T=2048) 2071 µs at chunk 16 against 2355
# at 32 (profiled, per call); B·H = 16 (B=1 T=4096) 1604 against 1423, so 32 stays below. B·H = 32 and 64 (T=2048,
# kernels/NOTES.md 66): GPU time per call 773 against 782 µs and 1201 against 1294 (profiler, two runs each within
# 0.2 %), one process's bench rows 1590 against 1672 and 1271 against 1304. Above 128 chunk 16 follows the forward's
# trend (NOTES 52), not measured under autograd. At K = 128 (B·H = 64) the two tie (2791 against 2826 µs, NOTES 66).
AUTO_CHUNK_GRAD_16_MIN_BH = 32
# Forward only (no gradient), above this many batch·heads the chunked forward takes chunk 16: the walk over
# chunks is long at batch 1, and its parallel work is what costs at more batch·heads. H200, bf16, T=2048
# (B=1: 4096), H=16, chunk 16 vs 32 (kernels/NOTES.md 52): K=V=64, B·H = 16 609 vs 522 µs, 32 394 vs 377,
# 64 561 vs 576, 128 942 vs 1029; K=V=128, B·H = 16 1020 vs 931, 64 1033 vs 1031.
AUTO_CHUNK_LONG_MAX_BH = 32
# Forward only at K ≤ 64 and between these batch·heads, chunk 64 with the scores fused into the solve (its inverse
# tf32, kernels/NOTES.md 53). H200, bf16, T=2048 H=16 K=V=64: B·H = 32 344 vs 377 µs (chunk 32), 64 529 vs 562
# (chunk 16); at 128 a tie (935 vs 936), at 256 slower (1840 vs 1765); at K=V=128, B·H = 64, slower (1186 vs 1035).
# With the lean walk, B=1 T=4096 (B·H = 16): 342.5 µs against 402.9 at chunk 32 (kernels/NOTES.md 56). Below 16 not
# measured.
AUTO_CHUNK_64 = (16, 64)
# Forward only with 16-bit inputs, the chunked forward's walk reads its per-chunk operands in that dtype (a lean walk,
# the state still fp32; kernels/NOTES.md 53, 54), at every batch·heads: FUSED_CHUNKED_MAX_BH holds for fp32 inputs.
# H200, bf16, T=2048 H=16 K=V=64: B·H = 256 1519 µs (chunk 16) against the fused-recurrent walk's 1724.
LEAN_WALK_DTYPES = (torch.bfloat16, torch.float16)

__all__ = [
    "auto_chunk_size", "chunk_delta_rule", "delta_rule_step", "naive_chunk_delta_rule", "naive_recurrent_delta_rule",
    "naive_delta_rule_step",
]


def auto_chunk_size(batch_heads: int, grad: bool, head_dim: int) -> int:
    """The Triton path's chunk length for ``chunk_size=None``: under autograd 16 at ``head_dim`` (K) ≤ 64 from
    :data:`AUTO_CHUNK_GRAD_16_MIN_BH` batch·heads, else :data:`DEFAULT_CHUNK`; forward only, 64 at K ≤ 64 within
    :data:`AUTO_CHUNK_64` batch·heads, else :data:`DEFAULT_CHUNK` up to :data:`AUTO_CHUNK_LONG_MAX_BH` batch·heads
    and 16 above."""
    if grad:
        return 16 if head_dim <= 64 and batch_heads >= AUTO_CHUNK_GRAD_16_MIN_BH else DEFAULT_CHUNK
    if head_dim <= 64 and AUTO_CHUNK_64[0] <= batch_heads <= AUTO_CHUNK_64[1]:
        return 64
    return DEFAULT_CHUNK if batch_heads <= AUTO_CHUNK_LONG_MAX_BH else 16


@on_input_device
def chunk_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int | None = None,
    impl: str = "auto",
) -> tuple[Tensor, Tensor | None]:
    """Whole-sequence generalized delta rule. See :func:`kernels.delta_rule.naive.naive_chunk_delta_rule`.

    ``chunk_size`` changes only the order of the sums (so the rounding), never the result in exact arithmetic.
    ``None`` lets the call pick: :func:`auto_chunk_size` on the Triton path, :data:`DEFAULT_CHUNK` on the reference.

    ``impl="triton"`` runs Triton kernels: chunked (forward and backward) with ``chunk_size`` 16, 32 or 64 when a
    gradient is tracked, the inputs are 16-bit (then with a lean walk when no gradient is tracked) or batch·heads
    are at most :data:`FUSED_CHUNKED_MAX_BH`, fused-recurrent otherwise. The
    chunked forward forms the scores in its solve
    (``fuse_scores``; H200, B=8 T=2048 H=16 K=V=64: forward 1258 → 987 µs, forward + backward 2854 → 2593 µs).
    """
    if resolve_impl(impl, q, "chunk_delta_rule") == "triton":
        from kernels.delta_rule.triton_chunk import CHUNKS, triton_chunk_delta_rule
        from kernels.delta_rule.triton_recurrent import triton_fused_recurrent_delta_rule

        grad, bh = tracks_grad(q, k, v, g, a, b, initial_state), q.shape[0] * q.shape[2]
        chunk = auto_chunk_size(bh, grad, q.shape[-1]) if chunk_size is None else chunk_size
        lean = not grad and q.dtype in LEAN_WALK_DTYPES
        if chunk in CHUNKS and (grad or lean or bh <= FUSED_CHUNKED_MAX_BH):
            return triton_chunk_delta_rule(q, k, v, g, a, b, scale, initial_state, output_final_state, chunk,
                                           fuse_scores=True, walk_dtype=q.dtype if lean else None)
        return triton_fused_recurrent_delta_rule(q, k, v, g, a, b, scale, initial_state, output_final_state, chunk)
    chunk = DEFAULT_CHUNK if chunk_size is None else chunk_size
    return naive_chunk_delta_rule(q, k, v, g, a, b, scale, initial_state, output_final_state, chunk)


@on_input_device
def delta_rule_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, state: Tensor, scale: float = 1.0, impl: str = "auto",
    bonus: Tensor | None = None, norm_weight: Tensor | None = None, gate: Tensor | None = None, eps: float = 1e-5,
    transposed_state: bool = False,
) -> Tensor:
    """One decode step, ``state`` updated in place, with the RWKV-7 read-out (bonus, norm, gate) fused when given.
    See :func:`kernels.delta_rule.naive.naive_delta_rule_step`. ``transposed_state``: ``state`` is Sᵀ,
    ``[B, H, V, K]`` (the layout the Triton step runs fastest on; :func:`kernels.delta_rule.triton_step.triton_delta_rule_step`)."""
    if resolve_impl(impl, q, "delta_rule_step") == "triton":
        from kernels.delta_rule.triton_step import triton_delta_rule_step

        return triton_delta_rule_step(q, k, v, g, a, b, state, scale, bonus, norm_weight, gate, eps,
                                      transposed_state=transposed_state)
    if transposed_state:
        B, H, K = q.shape
        if state.shape != (B, H, v.shape[-1], K):
            raise ValueError(f"delta_rule_step: state {tuple(state.shape)} must be [B, H, V, K] = "
                             f"{(B, H, v.shape[-1], K)} with transposed_state")
        state = state.transpose(-1, -2)  # the reference updates its [K, V] view in place
    return naive_delta_rule_step(q, k, v, g, a, b, state, scale, bonus, norm_weight, gate, eps)

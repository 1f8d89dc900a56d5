"""Generalized delta rule (RWKV-7's diagonal-plus-low-rank state transition).

``chunk_delta_rule`` runs whole sequences (training, prefill); ``delta_rule_step`` one decode step in
place. Layouts: ``[B, T, H, D]`` activations, ``[B, T, H, K]`` log-decay ``g`` and vectors ``a``,
``b``; ``[B, H, K, V]`` fp32 state. ``impl="triton"`` (``"auto"`` on CUDA) loads the Triton kernels
lazily: ``chunk_delta_rule`` runs the *fused-recurrent* forward of ``kernels.delta_rule.triton_recurrent``
(a sequential walk over T, not a chunked kernel; its backward recomputes through the reference
``naive_chunk_delta_rule``), ``delta_rule_step`` the in-place step of ``kernels.delta_rule.triton_step``.
A chunked (WY / UT-transform) Triton forward and backward is the next step.
"""

from __future__ import annotations

from torch import Tensor

from kernels._dispatch import on_input_device, resolve_impl
from kernels.delta_rule.naive import naive_chunk_delta_rule, naive_delta_rule_step, naive_recurrent_delta_rule

__all__ = ["chunk_delta_rule", "delta_rule_step", "naive_chunk_delta_rule", "naive_recurrent_delta_rule", "naive_delta_rule_step"]


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
    chunk_size: int = 32,
    impl: str = "auto",
) -> tuple[Tensor, Tensor | None]:
    """Whole-sequence generalized delta rule. See :func:`kernels.delta_rule.naive.naive_chunk_delta_rule`.

    ``impl="triton"`` runs the fused-recurrent Triton forward; ``chunk_size`` is then the chunk of the
    reference its backward recomputes through.
    """
    if resolve_impl(impl, q, "chunk_delta_rule") == "triton":
        from kernels.delta_rule.triton_recurrent import triton_fused_recurrent_delta_rule

        return triton_fused_recurrent_delta_rule(q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size)
    return naive_chunk_delta_rule(q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size)


@on_input_device
def delta_rule_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, state: Tensor, scale: float = 1.0, impl: str = "auto",
    bonus: Tensor | None = None, norm_weight: Tensor | None = None, gate: Tensor | None = None, eps: float = 1e-5,
) -> Tensor:
    """One decode step, ``state`` updated in place, with the RWKV-7 read-out (bonus, norm, gate) fused when given.
    See :func:`kernels.delta_rule.naive.naive_delta_rule_step`."""
    if resolve_impl(impl, q, "delta_rule_step") == "triton":
        from kernels.delta_rule.triton_step import triton_delta_rule_step

        return triton_delta_rule_step(q, k, v, g, a, b, state, scale, bonus, norm_weight, gate, eps)
    return naive_delta_rule_step(q, k, v, g, a, b, state, scale, bonus, norm_weight, gate, eps)

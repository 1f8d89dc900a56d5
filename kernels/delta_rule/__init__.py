"""Generalized delta rule (RWKV-7's diagonal-plus-low-rank state transition).

``chunk_delta_rule`` runs whole sequences (training, prefill); ``delta_rule_step`` one decode step in
place. Layouts: ``[B, T, H, D]`` activations, ``[B, T, H, K]`` log-decay ``g`` and vectors ``a``,
``b``; ``[B, H, K, V]`` fp32 state. ``impl="triton"`` loads ``kernels.delta_rule.triton_chunk`` /
``kernels.delta_rule.triton_step`` lazily; ``"auto"`` on CUDA uses them once they exist and the
reference until then.
"""

from __future__ import annotations

from torch import Tensor

from kernels.delta_rule.naive import naive_chunk_delta_rule, naive_delta_rule_step, naive_recurrent_delta_rule
from kernels.gla import resolve_available_impl

__all__ = ["chunk_delta_rule", "delta_rule_step", "naive_chunk_delta_rule", "naive_recurrent_delta_rule", "naive_delta_rule_step"]



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
    """Whole-sequence generalized delta rule. See :func:`kernels.delta_rule.naive.naive_chunk_delta_rule`."""
    if resolve_available_impl(impl, q, "chunk_delta_rule", "kernels.delta_rule.triton_chunk") == "triton":
        from kernels.delta_rule.triton_chunk import triton_chunk_delta_rule

        return triton_chunk_delta_rule(q, k, v, g, a, b, scale, initial_state, output_final_state)
    return naive_chunk_delta_rule(q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size)


def delta_rule_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, state: Tensor, scale: float = 1.0, impl: str = "auto"
) -> Tensor:
    """One decode step, ``state`` updated in place. See :func:`kernels.delta_rule.naive.naive_delta_rule_step`."""
    if resolve_available_impl(impl, q, "delta_rule_step", "kernels.delta_rule.triton_step") == "triton":
        from kernels.delta_rule.triton_step import triton_delta_rule_step

        return triton_delta_rule_step(q, k, v, g, a, b, state, scale)
    return naive_delta_rule_step(q, k, v, g, a, b, state, scale)

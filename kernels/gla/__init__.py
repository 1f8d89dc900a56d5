"""Gated linear attention (GLA) with a vector log-decay per key channel and step.

``chunk_gla`` runs whole sequences (training, prefill); ``gla_step`` one decode step in place.
Layouts: ``[B, T, H, D]`` activations, ``[B, T, H, K]`` log-decay, ``[B, H, K, V]`` fp32 state.
``impl="triton"`` loads ``kernels.gla.triton_chunk`` / ``kernels.gla.triton_step`` lazily; ``"auto"`` on CUDA
uses them (both exist: the chunk scan has a Triton forward and a Triton backward,
``kernels/gla/triton_chunk_bwd.py``, that recomputes the chunk-entry states; the decode step is Triton too).
:func:`resolve_available_impl` stays for ops whose Triton module is still missing (``kernels.delta_rule``).
"""

from __future__ import annotations

import importlib.util

from torch import Tensor

from kernels._dispatch import on_input_device, resolve_impl
from kernels.gla.naive import naive_chunk_gla, naive_gla_step, naive_recurrent_gla

__all__ = ["chunk_gla", "gla_step", "naive_chunk_gla", "naive_recurrent_gla", "naive_gla_step", "resolve_available_impl"]


def resolve_available_impl(impl: str, tensor: Tensor, op: str, module: str) -> str:
    """:func:`kernels._dispatch.resolve_impl`, except that ``"auto"`` keeps the reference while the
    Triton ``module`` (e.g. ``"kernels.gla.triton_chunk"``) does not exist yet; ``"triton"`` still insists."""
    resolved = resolve_impl(impl, tensor, op)
    if resolved == "triton" and impl == "auto" and importlib.util.find_spec(module) is None:
        return "naive"
    return resolved


@on_input_device
def chunk_gla(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int = 64,
    impl: str = "auto",
) -> tuple[Tensor, Tensor | None]:
    """Whole-sequence GLA. See :func:`kernels.gla.naive.naive_chunk_gla` for shapes."""
    if resolve_available_impl(impl, q, "chunk_gla", "kernels.gla.triton_chunk") == "triton":
        from kernels.gla.triton_chunk import triton_chunk_gla

        return triton_chunk_gla(q, k, v, g, scale, initial_state, output_final_state)
    return naive_chunk_gla(q, k, v, g, scale, initial_state, output_final_state, chunk_size)


@on_input_device
def gla_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor, scale: float = 1.0, impl: str = "auto",
    norm_weight: Tensor | None = None, gate: Tensor | None = None, eps: float = 1e-5,
) -> Tensor:
    """One decode step, ``state`` updated in place, with the read-out's norm and gate fused when given.
    See :func:`kernels.gla.naive.naive_gla_step`."""
    if resolve_available_impl(impl, q, "gla_step", "kernels.gla.triton_step") == "triton":
        from kernels.gla.triton_step import triton_gla_step

        return triton_gla_step(q, k, v, g, state, scale, norm_weight, gate, eps)
    return naive_gla_step(q, k, v, g, state, scale, norm_weight, gate, eps)

"""SSD (Mamba2) scan = gated linear attention with a scalar log-decay per head and step.

``chunk_ssd`` runs whole sequences (training, prefill); ``ssd_step`` one decode step in place.
Layouts: ``[B, T, H, D]`` activations, ``[B, T, H]`` log-decay, ``[B, H, K, V]`` fp32 state.
"""

from __future__ import annotations

from torch import Tensor

from kernels._dispatch import on_input_device, resolve_impl
from kernels.ssd.naive import naive_chunk_ssd, naive_recurrent_ssd, naive_ssd_step

__all__ = ["chunk_ssd", "ssd_step", "naive_chunk_ssd", "naive_recurrent_ssd", "naive_ssd_step"]


@on_input_device
def chunk_ssd(
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
    """Whole-sequence SSD scan. See :func:`kernels.ssd.naive.naive_chunk_ssd` for shapes."""
    if resolve_impl(impl, q, "chunk_ssd") == "triton":
        from kernels.ssd.triton_chunk import triton_chunk_ssd

        return triton_chunk_ssd(q, k, v, g, scale, initial_state, output_final_state)
    return naive_chunk_ssd(q, k, v, g, scale, initial_state, output_final_state, chunk_size)


@on_input_device
def ssd_step(q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor, scale: float = 1.0, impl: str = "auto") -> Tensor:
    """One decode step, ``state`` updated in place. See :func:`kernels.ssd.naive.naive_ssd_step`."""
    if resolve_impl(impl, q, "ssd_step") == "triton":
        from kernels.ssd.triton_step import triton_ssd_step

        return triton_ssd_step(q, k, v, g, state, scale)
    return naive_ssd_step(q, k, v, g, state, scale)

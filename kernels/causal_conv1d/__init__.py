"""Causal depthwise conv1d: ``causal_conv1d`` over a sequence, ``causal_conv1d_update`` for one step."""

from __future__ import annotations

from torch import Tensor

from kernels._dispatch import on_input_device, resolve_impl
from kernels.causal_conv1d.naive import naive_causal_conv1d, naive_causal_conv1d_update

__all__ = ["causal_conv1d", "causal_conv1d_update", "naive_causal_conv1d", "naive_causal_conv1d_update"]


@on_input_device
def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    initial_state: Tensor | None = None,
    activation: str | None = None,
    output_final_state: bool = True,
    impl: str = "auto",
) -> tuple[Tensor, Tensor | None]:
    """See :func:`kernels.causal_conv1d.naive.naive_causal_conv1d` for shapes."""
    if resolve_impl(impl, x, "causal_conv1d") == "triton":
        from kernels.causal_conv1d.triton_conv import triton_causal_conv1d

        return triton_causal_conv1d(x, weight, bias, initial_state, activation, output_final_state)
    return naive_causal_conv1d(x, weight, bias, initial_state, activation, output_final_state)


@on_input_device
def causal_conv1d_update(
    x: Tensor, state: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None, impl: str = "auto"
) -> Tensor:
    """See :func:`kernels.causal_conv1d.naive.naive_causal_conv1d_update`."""
    if resolve_impl(impl, x, "causal_conv1d_update") == "triton":
        from kernels.causal_conv1d.triton_conv import triton_causal_conv1d_update

        return triton_causal_conv1d_update(x, state, weight, bias, activation)
    return naive_causal_conv1d_update(x, state, weight, bias, activation)

"""Fused Mamba2 decode step (after in_proj, before out_proj): ``mamba2_step`` dispatches between the
reference and the one-launch Triton kernel. See :mod:`kernels.mamba2_step.naive` for the math and shapes.
"""

from __future__ import annotations

from torch import Tensor

from kernels._dispatch import on_input_device, resolve_impl
from kernels.mamba2_step.naive import naive_mamba2_step

__all__ = ["mamba2_step", "naive_mamba2_step"]


@on_input_device
def mamba2_step(zxbcdt: Tensor, ssm_state: Tensor, *args, impl: str = "auto", **kwargs) -> Tensor:
    """One decode step, states updated in place. Arguments as :func:`naive_mamba2_step`."""
    if resolve_impl(impl, zxbcdt, "mamba2_step") == "triton":
        from kernels.mamba2_step.triton_step import triton_mamba2_step

        return triton_mamba2_step(zxbcdt, ssm_state, *args, **kwargs)
    return naive_mamba2_step(zxbcdt, ssm_state, *args, **kwargs)

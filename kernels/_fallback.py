"""The documented backward fallback shared by chunked scans whose Triton backward is not written yet."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def reference_backward(
    reference: Callable[..., tuple[Tensor, Tensor | None]], saved: tuple, do: Tensor, dhT: Tensor | None
) -> list[Tensor | None]:
    """Gradients of ``reference(q, k, v, g, h0) -> (o, hT)`` for (q, k, v, g, h0), recomputed with autograd.

    Args:
        reference: the op's fp32 reference with every non-tensor argument already bound.
        saved: the forward's saved (q, k, v, g, initial_state-or-None).
        do, dhT: incoming gradients of the output and of the final state (or None).
    Returns:
        One gradient (or None) per saved tensor, in order.
    """
    inputs = [t.detach().requires_grad_(t.requires_grad) if t is not None else None for t in saved]
    with torch.enable_grad():
        o, hT = reference(*inputs)
        outs, grads_out = [o], [do]
        if hT is not None and dhT is not None:
            outs.append(hT)
            grads_out.append(dhT)
        wanted = [t for t in inputs if t is not None and t.requires_grad]
        got = iter(torch.autograd.grad(outs, wanted, grads_out, allow_unused=True)) if wanted else iter(())
    return [next(got) if t is not None and t.requires_grad else None for t in inputs]

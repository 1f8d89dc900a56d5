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


def with_reference_backward(forward: Callable, reference: Callable) -> type[torch.autograd.Function]:
    """An autograd Function: Triton ``forward`` for the values, ``reference`` recomputed for the gradients.

    Both take ``(q, k, v, g, scale, initial_state, output_final_state)`` and return ``(o, final_state)``.
    """

    class _Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, g, scale, initial_state, output_final_state):
            o, hT = forward(q, k, v, g, scale, initial_state, output_final_state)
            ctx.save_for_backward(q, k, v, g, initial_state)
            ctx.scale, ctx.output_final_state = scale, output_final_state
            return o, hT

        @staticmethod
        def backward(ctx, do, dhT):
            def bound(q, k, v, g, h0):
                return reference(q, k, v, g, ctx.scale, h0, ctx.output_final_state)

            r = reference_backward(bound, ctx.saved_tensors, do, dhT)
            return r[0], r[1], r[2], r[3], None, r[4], None

    return _Fn

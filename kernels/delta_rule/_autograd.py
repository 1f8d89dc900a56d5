"""Autograd for the delta rule's Triton forwards: their values, the reference's gradients (the documented fallback)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from kernels._dispatch import tracks_grad
from kernels._fallback import with_reference_backward
from kernels.delta_rule.naive import _check, naive_chunk_delta_rule


@functools.cache
def _function(forward: Callable, chunk_size: int, forward_takes_chunk: bool) -> type[torch.autograd.Function]:
    """The reference-recompute Function; ``g``, ``a``, ``b`` travel stacked in the wrapper's gate slot."""
    extra = (chunk_size,) if forward_takes_chunk else ()

    def values(q, k, v, gab, scale, h0, out_final):
        return forward(q, k, v, *gab.unbind(0), scale, h0, out_final, *extra)

    def reference(q, k, v, gab, scale, h0, out_final):
        return naive_chunk_delta_rule(q, k, v, *gab.unbind(0), scale, h0, out_final, chunk_size)

    return with_reference_backward(values, reference)


def reference_differentiable(
    forward: Callable, op: str, q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, scale: float,
    initial_state: Tensor | None, output_final_state: bool, chunk_size: int, forward_takes_chunk: bool,
) -> tuple[Tensor, Tensor | None]:
    """``forward``'s outputs, differentiable in q, k, v, g, a, b and the initial state through the reference
    :func:`naive_chunk_delta_rule` (chunks of ``chunk_size``) recomputed under autograd in the backward. Without
    a gradient to track, ``forward`` runs alone and nothing is stacked."""
    extra = (chunk_size,) if forward_takes_chunk else ()
    tensors = (q, k, v, g, a, b, initial_state)
    if not tracks_grad(*tensors):
        return forward(q, k, v, g, a, b, scale, initial_state, output_final_state, *extra)
    _check(q, k, v, g, a, b, op)
    gab = torch.stack([g.float(), a.float(), b.float()])
    return _function(forward, chunk_size, forward_takes_chunk).apply(q, k, v, gab, scale, initial_state, output_final_state)

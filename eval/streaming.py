"""Streaming checks: full forward vs prefill + step loop, and in-memory vs reloaded student."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def streaming_logits(student, input_ids: Tensor, prefill: int) -> Tensor:
    """Logits from prefilling ``prefill`` tokens then stepping one token at a time: ``[B, T, V]``."""
    state = student.allocate_state(input_ids.shape[0])
    parts = []
    if prefill > 0:
        parts.append(student(input_ids[..., :prefill], state=state).logits)
    for t in range(prefill, input_ids.shape[-1]):
        parts.append(student.step(input_ids[..., t], state).unsqueeze(1))
    return torch.cat(parts, dim=1)


@torch.no_grad()
def streaming_parity(student, input_ids: Tensor, prefill: int | None = None) -> dict[str, float]:
    """Max abs / max rel difference between the parallel forward and prefill + step decoding.

    Args:
        input_ids: ``[B, T]`` (or ``[B, S, T]`` for multistream students).
        prefill: tokens run through the parallel path first (default T // 3, an odd split that
            crosses chunk boundaries in both paths).
    """
    was_training = student.training
    student.eval()
    T = input_ids.shape[-1]
    prefill = T // 3 if prefill is None else prefill
    full = student(input_ids).logits.float()
    stream = streaming_logits(student, input_ids, prefill).float()
    student.train(was_training)
    diff = (full - stream).abs()
    return {
        "max_abs": diff.max().item(),
        "max_rel": (diff.max() / full.abs().max().clamp_min(1e-12)).item(),
        "prefill": prefill,
        "steps": T - prefill,
    }


@torch.no_grad()
def reload_parity(student, reloaded, input_ids: Tensor) -> dict[str, float]:
    """Max abs difference between two models' logits on the same input (export round trip)."""
    a = student.eval()(input_ids).logits.float()
    b = reloaded.eval()(input_ids).logits.float()
    return {"max_abs": (a - b).abs().max().item()}

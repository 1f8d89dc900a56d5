"""Held-out distillation metrics: KL(teacher‖student), NLL of both, top-1 agreement."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor


def _next_token_nll(logits: Tensor, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Sum of next-token NLL over positions whose target is valid, and their count.

    Multistream ids ``[B, S, T]``: the text stream (row 0) is the target, as the logits are text logits.
    """
    if input_ids.dim() == 3:
        input_ids = input_ids[:, 0]
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    target = input_ids[:, 1:]
    valid = mask[:, :-1] & mask[:, 1:]
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return (nll * valid).sum(), valid.sum()


@torch.no_grad()
def evaluate_distillation(teacher, student, batches: Iterable[dict], max_batches: int | None = None, device=None) -> dict[str, float]:
    """Token-averaged metrics over held-out windows.

    Args:
        teacher, student: modules mapping ``input_ids [B, T]`` to outputs with ``.logits [B, T, V]``.
        batches: dicts with ``input_ids [B, T]`` and a bool ``mask [B, T]`` (True on real tokens).
        max_batches: stop after this many batches (None: all).
    Returns:
        ``kl`` (mean over valid tokens of KL(teacher‖student), nats), ``top1`` (argmax agreement),
        ``nll_teacher`` / ``nll_student`` (next-token NLL on the data, nats), ``tokens`` (the KL/top-1
        denominator) and ``next_tokens`` (the NLL one), so results over shards can be pooled.
    """
    was_training = student.training
    student.eval()
    device = device or next(student.parameters()).device
    kl_sum = top1_sum = nll_t = nll_s = 0.0
    n_tok = n_next = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        ids = batch["input_ids"].to(device)
        mask = batch["mask"].to(device)
        t_logits = teacher(ids).logits.float()
        s_logits = student(ids).logits.float()
        t_logp = F.log_softmax(t_logits, -1)
        s_logp = F.log_softmax(s_logits, -1)
        kl = (t_logp.exp() * (t_logp - s_logp)).sum(-1)
        kl_sum += (kl * mask).sum().item()
        top1_sum += ((t_logits.argmax(-1) == s_logits.argmax(-1)) & mask).sum().item()
        n_tok += mask.sum().item()
        a, n = _next_token_nll(t_logits, ids, mask)
        b, _ = _next_token_nll(s_logits, ids, mask)
        nll_t += a.item()
        nll_s += b.item()
        n_next += n.item()
    student.train(was_training)
    if n_tok == 0:
        raise ValueError("evaluate_distillation: no valid tokens in the held-out batches")
    return {
        "kl": kl_sum / n_tok,
        "top1": top1_sum / n_tok,
        "nll_teacher": nll_t / max(n_next, 1),
        "nll_student": nll_s / max(n_next, 1),
        "tokens": n_tok,
        "next_tokens": n_next,
    }

"""Distillation losses: token-mean KL on logits (chunked), hidden-state MSE, optional CE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor, temperature: float = 1.0, chunk_tokens: int = 4096) -> Tensor:
    """Forward KL(teacher‖student) averaged over valid tokens (not over the batch), times T².

    Args:
        student_logits, teacher_logits: ``[B, T, ..., V]`` (extra dims, e.g. codebooks, are averaged).
        mask: ``[B, T]`` bool, True where a token is real (padding and prompts masked out).
        temperature: softening T; the T² factor keeps gradient scale comparable across T.
        chunk_tokens: tokens per chunk for the softmaxes, bounding memory for large vocabularies.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: student {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}")
    V = student_logits.shape[-1]
    extra = student_logits[0, 0].numel() // V  # codebooks per token
    s = student_logits.reshape(-1, V)
    t = teacher_logits.reshape(-1, V)
    m = mask.reshape(-1, 1).expand(-1, extra).reshape(-1)
    total = s.new_zeros((), dtype=torch.float32)
    for i in range(0, s.shape[0], chunk_tokens):
        sl = s[i : i + chunk_tokens].float() / temperature
        tl = t[i : i + chunk_tokens].float() / temperature
        kl = F.kl_div(F.log_softmax(sl, -1), F.log_softmax(tl, -1), log_target=True, reduction="none").sum(-1)
        total = total + (kl * m[i : i + chunk_tokens]).sum()
    return total / m.sum().clamp_min(1) * temperature**2


def hidden_mse(student_hidden: tuple[Tensor, ...], teacher_hidden: tuple[Tensor, ...], mask: Tensor) -> Tensor:
    """Mean over layers of token-mean squared error between block outputs, normalised by the teacher's scale.

    Block i of the student is compared with block i of the teacher (the student may have fewer).
    """
    n = min(len(student_hidden), len(teacher_hidden))
    m = mask.unsqueeze(-1).float()
    losses = []
    for i in range(1, n):  # index 0 is the shared embedding output
        s, t = student_hidden[i].float(), teacher_hidden[i].float()
        err = ((s - t) ** 2 * m).sum() / (m.sum() * s.shape[-1]).clamp_min(1)
        scale = ((t**2) * m).sum() / (m.sum() * t.shape[-1]).clamp_min(1)
        losses.append(err / scale.clamp_min(1e-6))
    return torch.stack(losses).mean()


def attention_transfer(student_outputs: dict[int, Tensor], teacher_outputs: dict[int, Tensor], mask: Tensor) -> Tensor:
    """Layer-wise mixer alignment (RADLADS / LoLCATs stage 1), normalised by the teacher's scale.

    Each student mixer reads the teacher's own attention input of that layer (teacher-forced), and its
    output is matched to the teacher attention's output: layers train independently of each other.

    Args:
        student_outputs, teacher_outputs: layer index → ``[B, T, D]`` (same keys).
        mask: ``[B, T]`` bool.
    """
    m = mask.unsqueeze(-1).float()
    denom = (m.sum() * next(iter(teacher_outputs.values())).shape[-1]).clamp_min(1)
    losses = []
    for i, t in teacher_outputs.items():
        s, t = student_outputs[i].float(), t.float()
        err = ((s - t) ** 2 * m).sum() / denom
        scale = ((t**2) * m).sum() / denom
        losses.append(err / scale.clamp_min(1e-6))
    return torch.stack(losses).mean()


def next_token_ce(logits: Tensor, input_ids: Tensor, mask: Tensor) -> Tensor:
    """Token-mean cross-entropy of predicting ``input_ids[t+1]`` from position t, on valid pairs.

    Multistream ids ``[B, S, T]``: the text stream (row 0) is the target of the text logits.
    """
    if input_ids.dim() == 3:
        input_ids = input_ids[:, 0]
    valid = mask[:, :-1] & mask[:, 1:]
    ce = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), input_ids[:, 1:].flatten(), reduction="none")
    return (ce * valid.flatten()).sum() / valid.sum().clamp_min(1)


class DistillLoss(nn.Module):
    """Weighted sum of KD terms.

    Args:
        kl_weight: weight of :func:`kd_kl` on logits.
        temperature: KD temperature.
        hidden_weight: weight of :func:`hidden_mse` on block outputs (0 disables; needs hidden states).
        ce_weight: weight of :func:`next_token_ce` on the data (0 disables).
        attn_weight: weight of :func:`attention_transfer` (0 disables): every mixer, fed the teacher's
            attention input, matches the teacher's attention output (stage 1 of a staged recipe).
        audio_weight: weight of KL on a multistream teacher's audio logits (0 disables): the teacher's
            frozen depth decoder, teacher-forced, reads the student's temporal states, and the result is
            matched to the teacher's own audio logits (``teacher.audio_logits=true``).
    """

    def __init__(
        self,
        kl_weight: float = 1.0,
        temperature: float = 1.0,
        hidden_weight: float = 0.0,
        ce_weight: float = 0.0,
        audio_weight: float = 0.0,
        attn_weight: float = 0.0,
        chunk_tokens: int = 4096,
    ):
        super().__init__()
        weights = (kl_weight, hidden_weight, ce_weight, audio_weight, attn_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                "loss weights must be ≥ 0 with at least one > 0 "
                "(loss.kl_weight, loss.hidden_weight, loss.ce_weight, loss.audio_weight, loss.attn_weight)"
            )
        if temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {temperature}")
        self.kl_weight, self.temperature = kl_weight, temperature
        self.hidden_weight, self.ce_weight, self.audio_weight = hidden_weight, ce_weight, audio_weight
        self.attn_weight = attn_weight
        self.chunk_tokens = chunk_tokens

    @property
    def needs_hidden(self) -> bool:
        return self.hidden_weight > 0

    @property
    def needs_student_forward(self) -> bool:
        """False for a pure attention-transfer stage, which runs the mixers alone."""
        return self.kl_weight + self.hidden_weight + self.ce_weight + self.audio_weight > 0

    def forward(
        self,
        student_out,
        teacher_out,
        input_ids: Tensor,
        mask: Tensor,
        student_audio: Tensor | None = None,
        attention: tuple[dict[int, Tensor], dict[int, Tensor]] | None = None,
    ) -> dict[str, Tensor]:
        """Returns ``{"loss": total, "kd_kl", "hidden_mse", "ce", "audio_kl", "attn_mse"}`` (present terms only).

        ``student_audio``: ``[B, T-1, K, V]`` audio logits computed from the student's states (audio_weight > 0).
        ``attention``: (student mixer outputs, teacher attention outputs) per layer (attn_weight > 0).
        """
        terms: dict[str, Tensor] = {}
        total = mask.new_zeros((), dtype=torch.float32)
        if self.kl_weight > 0:
            terms["kd_kl"] = kd_kl(student_out.logits, teacher_out.logits, mask, self.temperature, self.chunk_tokens)
            total = total + self.kl_weight * terms["kd_kl"]
        if self.hidden_weight > 0:
            terms["hidden_mse"] = hidden_mse(student_out.hidden_states, teacher_out.hidden_states, mask)
            total = total + self.hidden_weight * terms["hidden_mse"]
        if self.ce_weight > 0:
            terms["ce"] = next_token_ce(student_out.logits, input_ids, mask)
            total = total + self.ce_weight * terms["ce"]
        if self.audio_weight > 0:
            if student_audio is None or getattr(teacher_out, "audio_logits", None) is None:
                raise ValueError("loss.audio_weight > 0 needs a multistream teacher built with audio_logits=true")
            pair_mask = mask[:, :-1] & mask[:, 1:]
            terms["audio_kl"] = kd_kl(student_audio, teacher_out.audio_logits, pair_mask, self.temperature, self.chunk_tokens)
            total = total + self.audio_weight * terms["audio_kl"]
        if self.attn_weight > 0:
            if attention is None:
                raise ValueError("loss.attn_weight > 0 needs the teacher's captured attention inputs/outputs")
            terms["attn_mse"] = attention_transfer(attention[0], attention[1], mask)
            total = total + self.attn_weight * terms["attn_mse"]
        terms["loss"] = total
        return terms

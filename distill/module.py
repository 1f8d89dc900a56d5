"""DistillModule: a frozen teacher, a trainable student, and the KD loss between them."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch

from distill.losses import DistillLoss


class DistillModule(L.LightningModule):
    """Trains ``student`` to match ``teacher`` on token windows.

    Args:
        teacher: a frozen :class:`teachers.TeacherAdapter` (kept in eval mode, never checkpointed).
        student: a :class:`students.StudentLM`.
        loss: the :class:`DistillLoss`.
        optimizer: partial taking the student's parameters (``_partial_: true`` in config).
        scheduler: optional partial taking the optimizer; stepped every training step.
    """

    def __init__(self, teacher, student, loss: DistillLoss, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        self.teacher = teacher
        self.student = student
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # The teacher's weights are stripped from checkpoints; loading must not demand them back.
        self.strict_loading = False

    def _forward(self, batch):
        ids, mask = batch["input_ids"], batch["mask"]
        need_hidden = self.loss.needs_hidden
        with torch.no_grad():
            t_out = self.teacher(ids, output_hidden_states=need_hidden)
        s_out = self.student(ids, output_hidden_states=need_hidden)
        s_audio = None
        if self.loss.audio_weight > 0:
            # The teacher's frozen depth decoder reads the student's temporal states; gradients reach the student.
            s_audio = self.teacher.depth_logits(s_out.last_hidden_state[:, :-1], ids[:, :, 1:])
        return t_out, s_out, s_audio, ids, mask

    def training_step(self, batch, batch_idx):
        t_out, s_out, s_audio, ids, mask = self._forward(batch)
        terms = self.loss(s_out, t_out, ids, mask, s_audio)
        n = ids.shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, prog_bar=True, batch_size=n)
        self.log("train/tokens", mask.sum().float(), reduce_fx="sum", batch_size=n)
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        t_out, s_out, s_audio, ids, mask = self._forward(batch)
        terms = self.loss(s_out, t_out, ids, mask, s_audio)
        n_tok = mask.sum()
        agree = (t_out.logits.argmax(-1) == s_out.logits.argmax(-1)).reshape(*mask.shape, -1).float().mean(-1)  # [B, T]
        top1 = (agree * mask).sum() / n_tok
        # Weight batches by their token count so the epoch value is a token mean.
        self.log("val/kl", terms.get("kd_kl", terms["loss"]), batch_size=int(n_tok), prog_bar=True, sync_dist=True)
        self.log("val/loss", terms["loss"], batch_size=int(n_tok), sync_dist=True)
        self.log("val/top1", top1, batch_size=int(n_tok), sync_dist=True)

    def configure_optimizers(self):
        params = [p for p in self.student.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("teacher.")}


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.1):
    """Linear warm-up then cosine decay to ``min_ratio`` of the base learning rate."""
    import math

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["DistillModule", "warmup_cosine"]

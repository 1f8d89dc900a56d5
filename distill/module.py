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
        trainable: ``"all"`` student parameters, or only the ``"mixers"`` (embeddings, norms, MLPs and
            head stay as copied from the teacher, as in attention-transfer stages).
    """

    TRAINABLE = ("all", "mixers")

    def __init__(
        self, teacher, student, loss: DistillLoss, optimizer: Callable, scheduler: Callable | None = None, trainable: str = "all"
    ):
        super().__init__()
        if trainable not in self.TRAINABLE:
            raise ValueError(f"unknown trainable={trainable!r}; choose one of {self.TRAINABLE}")
        if trainable == "mixers":
            for name, p in student.named_parameters():
                p.requires_grad_(".mixer." in name)
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
        attention = None
        with torch.no_grad():
            if self.loss.attn_weight > 0:
                with self.teacher.capture_attention() as captured:
                    t_out = self.teacher(ids, output_hidden_states=need_hidden)
            else:
                t_out = self.teacher(ids, output_hidden_states=need_hidden)
        if self.loss.attn_weight > 0:
            # Teacher-forced, layer by layer: each mixer reads the teacher's attention input.
            layers = range(len(self.student.layers))
            student_attn = {i: self.student.layers[i].mixer(captured.inputs[i]) for i in layers}
            attention = (student_attn, {i: captured.outputs[i] for i in layers})
        s_out = self.student(ids, output_hidden_states=need_hidden) if self.loss.needs_student_forward else None
        s_audio = None
        if self.loss.audio_weight > 0:
            # The teacher's frozen depth decoder reads the student's temporal states; gradients reach the student.
            s_audio = self.teacher.depth_logits(s_out.last_hidden_state[:, :-1], ids[:, :, 1:])
        return t_out, s_out, s_audio, attention, ids, mask

    def training_step(self, batch, batch_idx):
        t_out, s_out, s_audio, attention, ids, mask = self._forward(batch)
        terms = self.loss(s_out, t_out, ids, mask, s_audio, attention)
        n = ids.shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, prog_bar=True, batch_size=n)
        self.log("train/tokens", mask.sum().float(), reduce_fx="sum", batch_size=n)
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        t_out, s_out, s_audio, attention, ids, mask = self._forward(batch)
        terms = self.loss(s_out, t_out, ids, mask, s_audio, attention)
        n_tok = mask.sum()
        if s_out is None:  # attention-transfer stage: only the layer-wise term exists
            self.log("val/loss", terms["loss"], batch_size=int(n_tok), prog_bar=True, sync_dist=True)
            return
        agree = (t_out.logits.argmax(-1) == s_out.logits.argmax(-1)).reshape(*mask.shape, -1).float().mean(-1)  # [B, T]
        top1 = (agree * mask).sum() / n_tok
        # Weight batches by their token count so the epoch value is a token mean.
        self.log("val/kl", terms.get("kd_kl", terms["loss"]), batch_size=int(n_tok), prog_bar=True, sync_dist=True)
        self.log("val/loss", terms["loss"], batch_size=int(n_tok), sync_dist=True)
        self.log("val/top1", top1, batch_size=int(n_tok), sync_dist=True)

    def on_train_start(self) -> None:
        # FSDP wraps the teacher's blocks in new modules, which start in train mode, and Lightning no
        # longer calls .train()/.eval() on fit start; put the whole teacher (wrappers too) in eval mode.
        self.teacher.train(False)

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

"""Callbacks: guard the teacher's eval mode; plot the training curves."""

from __future__ import annotations

import lightning as L


class TeacherFrozenCheck(L.Callback):
    """Fail loudly if the teacher leaves eval mode or gains trainable parameters during fit/validate."""

    def _check(self, pl_module, where: str) -> None:
        teacher = pl_module.teacher
        if teacher.training or any(m.training for m in teacher.modules()):
            raise RuntimeError(f"teacher switched to train mode ({where}); dropout/norm statistics would corrupt KD targets")
        if any(p.requires_grad for p in teacher.parameters()):
            raise RuntimeError(f"teacher parameters require grad ({where}); the teacher must stay frozen")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self._check(pl_module, "train start")

    def on_validation_start(self, trainer, pl_module):
        self._check(pl_module, "validation start")

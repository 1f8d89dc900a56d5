"""Callbacks: guard the teacher's eval mode; measure training throughput."""

from __future__ import annotations

import time

import lightning as L
import torch


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


class Throughput(L.Callback):
    """Training tokens per second over all ranks, after ``warmup_steps`` (kernel compiles, allocator warm-up).

    The clock runs over the training loop only: it stops for validation and resumes after it, with a
    device synchronise at each boundary (and nowhere else, so steps keep overlapping). Tokens are the
    ids each rank reads (``input_ids.numel()``), summed over ranks at the end. ``summary`` holds the
    result once fit ends (empty when fewer than ``warmup_steps + 1`` steps ran).
    """

    def __init__(self, warmup_steps: int = 10):
        if warmup_steps < 0:
            raise ValueError(f"callbacks.throughput.warmup_steps={warmup_steps} must be >= 0")
        self.warmup_steps = warmup_steps
        self.summary: dict[str, float] = {}
        self._since: float | None = None
        self._resume = False

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def _pause(self, pl_module) -> None:
        if self._since is not None:
            self._sync(pl_module)
            self._seconds += time.perf_counter() - self._since
            self._since = None

    def on_train_start(self, trainer, pl_module):
        self._seen, self._steps, self._tokens, self._seconds, self._since = 0, 0, 0, 0.0, None
        self.summary = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._seen == self.warmup_steps and self._since is None:
            self._sync(pl_module)
            self._since = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._seen >= self.warmup_steps:
            self._steps += 1
            self._tokens += int(batch["input_ids"].numel())
        self._seen += 1

    def on_validation_start(self, trainer, pl_module):
        self._resume = self._since is not None
        self._pause(pl_module)

    def on_validation_end(self, trainer, pl_module):
        if self._resume:
            self._sync(pl_module)
            self._since, self._resume = time.perf_counter(), False

    def on_train_end(self, trainer, pl_module):
        self._pause(pl_module)
        tokens = trainer.strategy.reduce(torch.tensor(float(self._tokens), device=pl_module.device), reduce_op="sum")
        if self._steps == 0 or self._seconds <= 0:
            return
        self.summary = {
            "train/tokens_per_s": float(tokens) / self._seconds,
            "train/timed_steps": self._steps,
            "train/timed_seconds": self._seconds,
            "train/world_size": trainer.world_size,
        }

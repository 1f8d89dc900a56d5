"""Evaluation as pure functions: (teacher, student, data) → metrics dict. Plain PyTorch."""

from eval.metrics import evaluate_distillation
from eval.streaming import reload_parity, streaming_parity

__all__ = ["evaluate_distillation", "reload_parity", "streaming_parity"]

"""Kernel tests: every fresh float buffer a kernel allocates starts as NaN, so unwritten outputs fail."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _nan_poisoned_allocations(monkeypatch):
    empty, empty_like = torch.empty, torch.empty_like

    def poison(t):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            t.fill_(float("nan"))
        return t

    monkeypatch.setattr(torch, "empty", lambda *a, **k: poison(empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: poison(empty_like(*a, **k)))
    monkeypatch.setattr(torch.Tensor, "new_empty", lambda self, *a, **k: poison(torch.Tensor.new_zeros(self, *a, **k)))

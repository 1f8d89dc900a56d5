"""Comparison helpers shared by the kernel tests."""

from __future__ import annotations

import torch


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """‖out − ref‖ / ‖ref‖ in float64; NaN anywhere in ``out`` gives inf."""
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def assert_close(name: str, out: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    assert out.shape == ref.shape, f"{name}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    err = rel_err(out, ref)
    assert err <= tol, f"{name}: rel err {err:.3e} > {tol:.0e}"


def grads(*tensors: torch.Tensor | None) -> list[torch.Tensor]:
    """The .grad of each tensor that requires grad (cleared afterwards)."""
    out = []
    for t in tensors:
        if t is not None and t.requires_grad:
            out.append(t.grad.clone())
            t.grad = None
    return out

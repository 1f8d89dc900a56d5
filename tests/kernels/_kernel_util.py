"""Comparison and out-of-bounds helpers shared by the kernel tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
import triton
from triton.runtime.autotuner import Autotuner


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


# Guard band elements either side of every guarded buffer: at least this many, and at least the buffer's own size,
# so an index that is off by a whole row, chunk or batch still lands in the band instead of in another allocation.
_GUARD = 1024


def _band(t: torch.Tensor) -> torch.Tensor:
    """The guard band of ``t``: NaN and the dtype's largest finite value, alternating. A stray read of two or more
    neighbours takes a NaN (outputs stop being finite), a single one takes a value that swamps any output; a stray
    write changes a NaN into a number or the largest value into anything else, which a band of NaN alone would
    miss when the written value is itself NaN (as it is when it was computed from stray reads)."""
    band = torch.full((max(_GUARD, t.numel()),), float("nan"), dtype=t.dtype, device=t.device)
    band[1::2] = torch.finfo(t.dtype).max
    return band


def guarded(t: torch.Tensor, copy: bool = True) -> torch.Tensor:
    """A contiguous view into the middle of a larger allocation, holding ``t`` (``copy``) or NaN, with a guard band
    (:func:`_band`) either side that :func:`bands_intact` checks. Floating dtypes only (the band holds NaN)."""
    assert t.is_floating_point(), f"guard bands hold NaN: {t.dtype} cannot"
    band = _band(t)
    out = torch.cat([band, torch.full((t.numel(),), float("nan"), dtype=t.dtype, device=t.device), band])
    out = out[band.numel():band.numel() + t.numel()].view(t.shape)
    if copy:
        out.copy_(t)
    return out


def bands_intact(t: torch.Tensor) -> bool:
    """True when both guard bands around a :func:`guarded` tensor hold exactly what they were given."""
    band = _band(t)
    pad, n = band.numel(), t.numel()
    flat = torch.as_strided(t, (n + 2 * pad,), (1,), t.storage_offset() - pad)

    def same(x):  # bitwise-equal up to the NaN payload; inf is mapped apart from the largest finite value
        return torch.equal(x.isnan(), band.isnan()) and torch.equal(x.nan_to_num(0.0, 1.0, -1.0), band.nan_to_num(0.0, 1.0, -1.0))

    return same(flat[:pad]) and same(flat[-pad:])


class Guards:
    """Every buffer a kernel test touches, each inside guard bands (:func:`guarded`).

    ``guards(t)`` guards a test's input; inside ``with guards.allocations():`` every floating, contiguous
    tensor the kernel wrappers allocate with ``torch.empty``, ``torch.empty_like`` or ``Tensor.new_empty`` is
    guarded too (outputs, intermediates such as chunk states). :meth:`check` asserts no band was written.
    """

    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []

    def __call__(self, t: torch.Tensor | None, copy: bool = True) -> torch.Tensor | None:
        if t is None:
            return None
        out = guarded(t, copy)
        self.tensors.append(out)
        return out

    def _wrap(self, alloc):
        def guarded_alloc(*args, **kwargs):
            t = alloc(*args, **kwargs)
            # (empty ones are left alone: the interpreter makes them to re-point at its arguments' storage)
            if t.numel() and t.is_floating_point() and t.is_contiguous() and not t.requires_grad:
                return self(t, copy=False)
            return t

        return guarded_alloc

    @contextlib.contextmanager
    def allocations(self) -> Iterator[Guards]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch, "empty", self._wrap(torch.empty))
            mp.setattr(torch, "empty_like", self._wrap(torch.empty_like))
            new_empty = self._wrap(torch.Tensor.new_empty)
            mp.setattr(torch.Tensor, "new_empty", lambda self, *a, **k: new_empty(self, *a, **k))
            yield self

    def check(self, what: str) -> None:
        bad = [tuple(t.shape) for t in self.tensors if not bands_intact(t)]
        assert not bad, f"{what}: wrote outside buffers of shapes {bad} (guard bands changed)"


def distinct(configs: list[triton.Config]) -> list[triton.Config]:
    """The configs with distinct meta-parameters (block sizes): the interpreter ignores warps and stages."""
    seen, out = set(), []
    for cfg in configs:
        key = tuple(sorted(cfg.kwargs.items()))
        if key not in seen:
            seen.add(key)
            out.append(cfg)
    return out


def zipped(*config_lists: list[triton.Config]) -> list[tuple[triton.Config, ...]]:
    """Runs that together give each kernel every one of its configs: run ``i`` takes config ``i`` of each list
    (cycling through the shorter ones). One pipeline run then checks a config of every kernel in it."""
    n = max(len(c) for c in config_lists)
    return [tuple(c[i % len(c)] for c in config_lists) for i in range(n)]


def config_id(cfg: triton.Config) -> str:
    return "-".join(f"{k}{v}" for k, v in cfg.kwargs.items())


@contextlib.contextmanager
def only_configs(*kernel_configs: tuple[Autotuner, triton.Config]) -> Iterator[None]:
    """Launches of each autotuned kernel use its given config, grid lambdas included: with a single config
    the autotuner neither benchmarks nor prunes, it runs that one (under the interpreter too)."""
    with pytest.MonkeyPatch.context() as mp:
        for kernel, cfg in kernel_configs:
            mp.setattr(kernel, "configs", [cfg])
        yield


@contextlib.contextmanager
def gpu_launch_choices(*modules) -> Iterator[None]:
    """Inside, ``triton_interpreted()`` is False for the launch-choosing code of ``modules`` (each imported
    it by name), so they pick the blocks and grids they would pick on a GPU while the kernels still run in
    the interpreter."""
    with pytest.MonkeyPatch.context() as mp:
        for module in modules:
            mp.setattr(module, "triton_interpreted", lambda: False)
        yield


def ssd_inputs(B, T, H, K, V, s0, device, dtype=torch.float32):
    """Fresh SSD scan inputs (q, k, v, g, h0-or-None), all requiring grad; log-decays in [-0.5, 0): decays 0.6..1,
    so a chunk mixes short and long memory."""
    q = torch.randn(B, T, H, K, device=device, dtype=dtype, requires_grad=True)
    k = (torch.randn(B, T, H, K, device=device) / K**0.5).to(dtype).requires_grad_()
    v = torch.randn(B, T, H, V, device=device, dtype=dtype, requires_grad=True)
    g = (-0.5 * torch.rand(B, T, H, device=device)).requires_grad_()
    h0 = torch.randn(B, H, K, V, device=device, requires_grad=True) if s0 else None
    return q, k, v, g, h0


def mixer_read_out(y, norm_weight, gate, eps=1e-5):
    """A linear-attention mixer's read-out on ``y [B, H, V]``, written out independently of the kernels:
    per-head RMSNorm × weight ``[H·V]`` (if given), then × sigmoid(gate ``[B, H·V]``) (if given)."""
    B, H, V = y.shape
    if norm_weight is not None:
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps) * norm_weight.view(H, V)
    if gate is not None:
        y = y * torch.sigmoid(gate.view(B, H, V))
    return y

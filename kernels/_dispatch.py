"""Choosing between a kernel's reference and its Triton implementation."""

from __future__ import annotations

import functools
import os

import torch

IMPLS = ("auto", "naive", "triton")


def triton_interpreted() -> bool:
    """True when Triton kernels run on the CPU through the interpreter (tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# Block and grid arithmetic for host code. triton.cdiv and triton.next_power_of_2 are constexpr functions in
# triton 3.6: each host call unwraps its arguments, ~5 us on a CI core against ~0.01 us for the integer
# expression, and the wrappers make a dozen to two dozen of them per call (grid lambdas included), which is
# time the CPU spends before the GPU gets work (kernels/NOTES.md 48).
def cdiv(a: int, b: int) -> int:
    """⌈a / b⌉ of two integers, b > 0 (as ``triton.cdiv``)."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of 2 ≥ n for n ≥ 1, and 0 for n = 0 (as ``triton.next_power_of_2``)."""
    return 1 << (n - 1).bit_length() if n > 0 else 0


def bh_bucket(BH: int) -> int:
    """The delta rule's walks key their autotuning on batch·heads rounded up to a power of 2 (at most 4096): how
    many programs share the GPU decides their best V block (see kernels/delta_rule/triton_recurrent.py)."""
    return min(next_power_of_2(BH), 4096)


# Autotune size classes (kernels/NOTES.md 49): off until timed on a GPU; see size_class.
SIZE_CLASSES = False


def size_class(programs: int) -> int:
    """A coarse class of a launch's size for its autotune key: one per factor of 4 in ``programs`` (the
    batch·heads of a state walk, chunks × batch·heads of a chunk-parallel kernel), at most 12. Without it the
    first shape a process runs picks the tile for every later one with the same head sizes. While
    ``SIZE_CLASSES`` is off it is 0 for every size, so one tile serves all sizes as before."""
    return min(max(programs, 1).bit_length() // 2, 12) if SIZE_CLASSES else 0


def tracks_grad(*tensors: torch.Tensor | None) -> bool:
    """True when autograd is on and any of ``tensors`` (None skipped) requires grad: a kernel's backward is needed."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def resolve_impl(impl: str, tensor: torch.Tensor, op: str) -> str:
    """Turn ``impl`` into ``"naive"`` or ``"triton"`` for tensors living where ``tensor`` lives.

    Raises a ValueError naming the known choices for an unknown ``impl``, and one that says how to
    run Triton on the CPU when ``impl="triton"`` is asked for CPU tensors without the interpreter.
    """
    if impl not in IMPLS:
        raise ValueError(f"{op}: unknown impl={impl!r}; choose one of {IMPLS}")
    if impl == "auto":
        return "triton" if tensor.is_cuda else "naive"
    if impl == "triton" and not tensor.is_cuda and not triton_interpreted():
        raise ValueError(
            f"{op}: impl='triton' on a {tensor.device} tensor needs a CUDA device or TRITON_INTERPRET=1; "
            "use impl='naive' (or 'auto') on the CPU"
        )
    return impl


def on_input_device(op):
    """Launch ``op``'s kernels on the GPU its first tensor argument lives on.

    Triton launches on the current CUDA device; a tensor on another GPU (rank 1 of a data-parallel
    job before its trainer sets the device, a model placed on ``cuda:1``) would fail with "Pointer
    argument cannot be accessed from Triton". Backward passes need no guard: autograd runs each
    device's work on a thread bound to that device.
    """

    @functools.wraps(op)
    def guarded(*args, **kwargs):
        tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if tensor is not None and tensor.is_cuda and tensor.device.index != torch.cuda.current_device():
            with torch.cuda.device(tensor.device):
                return op(*args, **kwargs)
        return op(*args, **kwargs)

    return guarded


# Enough programs to give each of ~132 SMs (H100/H200) a few; below that, decode steps cut V finer.
_TARGET_PROGRAMS = 512
# Fewer programs than this with V blocks of 16 leave SMs of an H100/H200 idle: a step with K ≤ 64 then takes V blocks
# of 8 on 8 warps, twice the programs (kernels/NOTES.md 66, H200, B=1 H=16 K=V=64, medians of 10 rounds: SSD 1.65 →
# 1.61 µs, mamba_ssm's selective_state_update 1.63; GLA 1.66 → 1.58). At K = 128 V blocks of 8 were slower.
_FEW_PROGRAMS = 128


def step_launch(BH: int, K: int, V: int, rank_one: bool = False, state_vk: bool = False) -> tuple[int, int, int]:
    """(BK, BV, num_warps) of a decode-step kernel with one program per (V block, batch·head), ``BH`` batch·heads.

    Each program holds a whole ``[K, BV]`` column block of the fp32 state (the output reduces over K), at
    most 8K elements in registers. When batch·heads alone cannot fill the GPU (decode at batch 1), V is cut
    finer so more programs share the step: there the step is latency-bound, and a smaller tile per program
    shortens its dependent load → update → store chain; at K ≤ 64 down to V blocks of 8 when those of 16 leave
    SMs idle (not for ``rank_one``: its V blocks of 8 were no faster, kernels/NOTES.md 67). The interpreter
    takes all of V in one program. ``rank_one`` (the delta rule: a second reduction over K, ``u = Sᵀ a``) takes
    ``[K, 32]`` tiles once batch·heads fill the GPU with them (2 warps at K = 128, 4 below: B=64 H=16 K=V=64
    7.7 against 8.3-8.5 µs on 2), and at K = 128 with few programs its ``[128, 16]`` tile on 8 warps rather than 4
    (B=1 H=16: 2.34 against 2.45 µs, ten rounds, NOTES 67). Every other tile takes 4 warps, the ``[128, 64]`` one
    of batch 64 too since its masks went (EVEN): SSD 36.4 against 36.9, GLA 37.2 against 40.4 µs on 8 (NOTES 70).
    Warp counts and these rules come from sweeps on an H200 (``scripts/sweep_step_launch.py``, kernels/NOTES.md 27).

    ``state_vk`` (the delta rule's state held as Sᵀ, K contiguous): a warp's threads lie along K, so the reductions
    over K are warp shuffles. V blocks of 16 on 8 warps while those leave at most 512 programs, then [128, 64] on 8
    warps at K = 128 and [64, 32] on 4 below (H200, H=16, kernels/NOTES.md 73 run 2: K=V=128 B=64 [128, 64] 36.0 µs,
    [128, 32] 39.3; K=V=64 B=1 [64, 16] on 8 warps 1.49, on 4 1.64; B=8 2.15 against [64, 32] on 4 2.48).
    """
    BK = max(16, next_power_of_2(K))
    BV = max(16, next_power_of_2(V))
    if triton_interpreted():
        return BK, BV, 4
    if state_vk:
        if BH * cdiv(V, 16) <= _TARGET_PROGRAMS:
            return BK, min(BV, 16), 8
        return (BK, min(BV, 64), 8) if BK >= 128 else (BK, min(BV, 32), 4)
    BV = min(BV, max(16, 8192 // BK))
    while BV > 16 and BH * cdiv(V, BV) < _TARGET_PROGRAMS:
        BV //= 2
    if rank_one and BV > 32 and BH * cdiv(V, 32) >= _TARGET_PROGRAMS:
        return BK, 32, 2 if BK >= 128 else 4
    if BV == 16 and BK <= 64 and not rank_one and BH * cdiv(V, 16) < _FEW_PROGRAMS:
        return BK, 8, 8
    if BV == 16 and BK >= 128 and rank_one and BH * cdiv(V, 16) <= _FEW_PROGRAMS:
        return BK, 16, 8
    return BK, BV, 4

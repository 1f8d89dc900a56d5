"""Choosing between a kernel's reference and its Triton implementation."""

from __future__ import annotations

import os

import torch

IMPLS = ("auto", "naive", "triton")


def triton_interpreted() -> bool:
    """True when Triton kernels run on the CPU through the interpreter (tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


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

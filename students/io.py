"""Saving and loading students with torch + safetensors only (what a miner has).

An export directory holds:
  * ``model.safetensors`` — the weights (tied tensors stored once);
  * ``config.json`` — the :class:`StudentConfig`, plus the streaming state spec (batch 1) and any
    extra metadata (eval metrics, parity results, provenance).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from students.config import StudentConfig
from students.model import StudentLM

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_student(model: StudentLM, path: str | os.PathLike, extra: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``model`` to directory ``path`` atomically (a temporary sibling, then a rename).

    Refuses an existing ``path`` unless ``overwrite``; a crash mid-write leaves no partial export.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"export dir {path} already exists; pass overwrite=True (export.overwrite=true) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            tensors.pop("lm_head.weight", None)
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt", "distill": "student"})
        meta = {
            "student": model.config.to_dict(),
            "state_spec": model.allocate_state(1, device="cpu").spec(),
            **(extra or {}),
        }
        (tmp / CONFIG).write_text(json.dumps(meta, indent=1, default=str))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_export_config(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    cfg = path / CONFIG
    if not cfg.is_file():
        raise FileNotFoundError(f"{path} is not a student export: {CONFIG} is missing")
    return json.loads(cfg.read_text())


def load_student(
    path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None, impl: str | None = None
) -> StudentLM:
    """Rebuild a student from an export directory (no pickle is ever loaded).

    Args:
        path: directory written by :func:`save_student`.
        impl: override the kernel choice recorded at export (``"auto"``, ``"naive"``, ``"triton"``).
    """
    path = Path(path)
    meta = read_export_config(path)
    if not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{path} is not a student export: {WEIGHTS} is missing")
    config = StudentConfig.from_dict(meta["student"])
    if impl is not None:
        config.impl = impl
    model = StudentLM(config)
    tensors = load_file(str(path / WEIGHTS))
    if config.tie_word_embeddings:
        tensors["lm_head.weight"] = tensors["embed.weight"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path / WEIGHTS} does not match its config: missing {missing}, unexpected {unexpected}")
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)

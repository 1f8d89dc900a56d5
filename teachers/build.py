"""Building teachers: tiny random ones from a config dict, real ones from a local directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from teachers.base import TeacherAdapter, require_files, resolve_dtype
from teachers.llama import LLAMA_FAMILY, LlamaTeacher

TEACHER_BUILDERS: dict[str, Callable[..., TeacherAdapter]] = {}
LAYOUT_KEY = "distill_token_layout"  # token layout stored inside a local teacher's config.json


def register_teacher(kind: str):
    def deco(fn):
        if kind in TEACHER_BUILDERS:
            raise ValueError(f"teacher kind {kind!r} registered twice")
        TEACHER_BUILDERS[kind] = fn
        return fn

    return deco


def build_teacher(
    kind: str,
    config: dict[str, Any] | None = None,
    path: str | None = None,
    seed: int = 0,
    dtype: str = "float32",
    token_layout: dict[str, Any] | None = None,
    device: str = "cpu",
) -> TeacherAdapter:
    """Build a frozen teacher adapter.

    Args:
        kind: teacher family; one of ``TEACHER_BUILDERS``.
        config: architecture dict (with ``model_type``) for a randomly initialised teacher.
        path: local directory with ``config.json`` + ``model.safetensors`` (never a hub id).
        seed: RNG seed for a random teacher.
        token_layout: speech-token layout metadata; overrides the one stored with a local teacher.
    Exactly one of ``config`` and ``path`` must be given.
    """
    if kind not in TEACHER_BUILDERS:
        raise ValueError(f"unknown teacher.kind={kind!r}; supported: {sorted(TEACHER_BUILDERS)}")
    if (config is None) == (path is None):
        raise ValueError("give exactly one of teacher.config (a random teacher) and teacher.path (a local checkpoint)")
    if config is not None:
        config = dict(config)
    teacher = TEACHER_BUILDERS[kind](config=config, path=path, seed=seed, token_layout=token_layout)
    return teacher.to(device=device, dtype=resolve_dtype(dtype))


def _hf_classes(model_type: str, family: dict[str, tuple[str, str]], kind: str):
    import transformers

    if model_type not in family:
        raise ValueError(
            f"teacher.kind={kind!r} got model_type={model_type!r}, which is not a supported causal transformer; "
            f"supported model_type values: {sorted(family)}"
        )
    config_name, model_name = family[model_type]
    return getattr(transformers, config_name), getattr(transformers, model_name)


@register_teacher("llama")
def build_llama_teacher(config=None, path=None, seed=0, token_layout=None) -> LlamaTeacher:
    if path is not None:
        root = require_files(path, ["config.json", "model.safetensors"])
        raw = json.loads((root / "config.json").read_text())
        config_cls, model_cls = _hf_classes(raw.get("model_type", "<missing>"), LLAMA_FAMILY, "llama")
        model = model_cls.from_pretrained(str(root), local_files_only=True, use_safetensors=True, torch_dtype=torch.float32)
        layout = token_layout if token_layout is not None else raw.get(LAYOUT_KEY, {})
        return LlamaTeacher(model, layout, source=str(root))
    config = dict(config)
    model_type = config.pop("model_type", "<missing>")
    config_cls, model_cls = _hf_classes(model_type, LLAMA_FAMILY, "llama")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config_cls(**config))
    return LlamaTeacher(model, token_layout, source=f"random {model_type} (seed {seed})")


def save_teacher(teacher: TeacherAdapter, path: str | os.PathLike) -> Path:
    """Save an HF-backed teacher as a local directory ``build_teacher(path=...)`` can load."""
    path = Path(path)
    teacher.model.save_pretrained(str(path), safe_serialization=True)
    cfg = json.loads((path / "config.json").read_text())
    cfg[LAYOUT_KEY] = teacher.token_layout
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    return path

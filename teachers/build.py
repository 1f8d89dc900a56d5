"""Building teachers: tiny random ones from a config dict, real ones from a local directory."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from teachers.base import TeacherAdapter, require_files, resolve_dtype
from teachers.kyutai import KyutaiTeacher, build_lm, kyutai_lm_kwargs, load_kyutai_lm, save_kyutai
from teachers.llama import LLAMA_FAMILY, LlamaTeacher
from teachers.moshi import MOSHI_FAMILY, MoshiTeacher

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
    **options: Any,
) -> TeacherAdapter:
    """Build a frozen teacher adapter.

    Args:
        kind: teacher family; one of ``TEACHER_BUILDERS``.
        config: architecture dict (with ``model_type``) for a randomly initialised teacher.
        path: local directory with ``config.json`` + ``model.safetensors`` (never a hub id).
        seed: RNG seed for a random teacher.
        token_layout: speech-token layout metadata; overrides the one stored with a local teacher.
        options: kind-specific options (``moshi``: ``audio_logits``), named when unknown.
    Exactly one of ``config`` and ``path`` must be given.
    """
    if kind not in TEACHER_BUILDERS:
        raise ValueError(f"unknown teacher.kind={kind!r}; supported: {sorted(TEACHER_BUILDERS)}")
    if (config is None) == (path is None):
        raise ValueError("give exactly one of teacher.config (a random teacher) and teacher.path (a local checkpoint)")
    if config is not None:
        config = dict(config)
    builder = TEACHER_BUILDERS[kind]
    accepted = set(inspect.signature(builder).parameters) - {"config", "path", "seed", "token_layout"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"teacher.kind={kind!r} has no options {unknown}; its options: {sorted(accepted)}")
    teacher = builder(config=config, path=path, seed=seed, token_layout=token_layout, **options)
    return teacher.to(device=device, dtype=resolve_dtype(dtype))


def _hf_classes(model_type: str, family: dict[str, tuple[str, str]], kind: str):
    import transformers

    if model_type not in family:
        raise ValueError(
            f"teacher.kind={kind!r} got model_type={model_type!r}, which this kind does not support; "
            f"supported model_type values: {sorted(family)}"
        )
    config_name, model_name = family[model_type]
    return getattr(transformers, config_name), getattr(transformers, model_name)


def _load_local(path: str, family: dict[str, tuple[str, str]], kind: str, token_layout: dict | None):
    """Local HF checkpoint → (model, token layout: the given one, else the one saved with it)."""
    root = require_files(path, ["config.json", "model.safetensors"])
    raw = json.loads((root / "config.json").read_text())
    _, model_cls = _hf_classes(raw.get("model_type", "<missing>"), family, kind)
    model = model_cls.from_pretrained(str(root), local_files_only=True, use_safetensors=True, torch_dtype=torch.float32)
    return model, token_layout if token_layout is not None else raw.get(LAYOUT_KEY, {})


def _build_random(config: dict, family: dict[str, tuple[str, str]], kind: str, seed: int):
    config = dict(config)
    model_type = config.pop("model_type", "<missing>")
    config_cls, model_cls = _hf_classes(model_type, family, kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config_cls(**config))
    return model, f"random {model_type} (seed {seed})"


@register_teacher("llama")
def build_llama_teacher(config=None, path=None, seed=0, token_layout=None) -> LlamaTeacher:
    if path is not None:
        model, layout = _load_local(path, LLAMA_FAMILY, "llama", token_layout)
        return LlamaTeacher(model, layout, source=str(path))
    model, source = _build_random(config, LLAMA_FAMILY, "llama", seed)
    return LlamaTeacher(model, token_layout, source=source)


@register_teacher("moshi")
def build_moshi_teacher(config=None, path=None, seed=0, token_layout=None, audio_logits: bool = False) -> MoshiTeacher:
    """MoshiForConditionalGeneration from a local directory or a (tiny) config dict.

    The config dict takes MoshiConfig's arguments; the depth decoder goes in ``depth_decoder_config``
    and the codec in ``audio_encoder_config`` (dicts). ``depth_*`` keys anywhere else are refused:
    MoshiConfig would silently ignore them and build a full-size depth decoder.
    """
    if path is not None:
        model, layout = _load_local(path, MOSHI_FAMILY, "moshi", token_layout)
        return MoshiTeacher(model, layout, source=str(path), audio_logits=audio_logits)
    stray = sorted(k for k in config if k.startswith("depth_") and k != "depth_decoder_config")
    if stray:
        raise ValueError(
            f"teacher.config has {stray}: MoshiConfig ignores depth_* keys; put them inside "
            "teacher.config.depth_decoder_config (e.g. depth_decoder_config: {hidden_size: 16, ...})"
        )
    model, source = _build_random({"model_type": "moshi", **config}, MOSHI_FAMILY, "moshi", seed)
    return MoshiTeacher(model, token_layout, source=source, audio_logits=audio_logits)


@register_teacher("kyutai")
def build_kyutai_teacher(config=None, path=None, seed=0, token_layout=None, audio_logits: bool = False) -> KyutaiTeacher:
    """A kyutai-format ``moshi.models.lm.LMModel`` (Moshi, Hibiki) from a local directory or a (tiny) config dict.

    The config dict takes LMModel's arguments (``n_q``, ``dep_q``, ``card``, ``text_card``, ``dim``, ``num_heads``,
    ``num_layers``, ``hidden_scale``, ``norm``, ``gating``, ``positional_embedding``, ``delays``, ``depformer_*``, …),
    i.e. a kyutai config.json's content. The directory is a kyutai checkpoint: config.json + the safetensors file
    its ``moshi_name`` names (see :func:`teachers.kyutai.load_kyutai_lm`); its token layout, when saved by
    :func:`save_teacher`, sits beside it in ``distill_token_layout.json``.
    """
    if path is not None:
        lm, lm_kwargs, layout, weights = load_kyutai_lm(path)
        layout = token_layout if token_layout is not None else layout
        return KyutaiTeacher(lm, layout, source=weights, audio_logits=audio_logits, lm_kwargs=lm_kwargs)
    lm_kwargs = kyutai_lm_kwargs(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = build_lm(lm_kwargs).eval()
    return KyutaiTeacher(lm, token_layout, source=f"random kyutai LMModel (seed {seed})", audio_logits=audio_logits, lm_kwargs=lm_kwargs)


def save_teacher(teacher: TeacherAdapter, path: str | os.PathLike) -> Path:
    """Save a teacher as a local directory ``build_teacher(path=...)`` can load (HF format, or kyutai's for ``kyutai``)."""
    if isinstance(teacher, KyutaiTeacher):
        return save_kyutai(teacher, path)
    path = Path(path)
    teacher.model.save_pretrained(str(path), safe_serialization=True)
    cfg = json.loads((path / "config.json").read_text())
    cfg[LAYOUT_KEY] = teacher.token_layout
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    return path

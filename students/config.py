"""The student's configuration: everything needed to rebuild it, and nothing else.

Geometry is derived from the teacher in code (:func:`students.config.student_config_from_teacher`),
never copied into YAML, so a student always matches the teacher it is initialised from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1


@dataclass
class StudentConfig:
    """A recurrent (or hybrid) decoder with a teacher-shaped block: norm → mixer → norm → MLP.

    Attributes:
        vocab_size: output (and, for flat token streams, input) vocabulary.
        hidden_size: residual width D.
        num_layers: number of blocks; ``len(pattern)`` must equal it.
        num_heads, num_kv_heads, head_dim: the teacher attention's geometry the mixers inherit.
        intermediate_size: MLP width.
        pattern: mixer kind per layer, e.g. ``["mamba2", "mamba2", "attn", "mamba2"]``.
        mixers: per-kind options, e.g. ``{"mamba2": {"d_conv": 4, "chunk_size": 64}}``.
        hidden_act: MLP activation (``"silu"`` or ``"gelu"``).
        rms_norm_eps: RMSNorm epsilon.
        tie_word_embeddings: share embedding and LM head.
        rope_theta: RoPE base for attention layers kept in a hybrid.
        rope_scaling: the teacher's RoPE variant for those layers (``{}``: default; ``rope_type`` "linear" or
            "llama3" with HF's parameters; others are refused when an attention layer is built).
        token_layout: speech-token layout travelling from the teacher to the export
            (codebooks, per-codebook vocab slices, frame rate, ...); free-form JSON.
        teacher: where the student came from (kind, path, name); free-form JSON.
        impl: kernel choice for mixers: ``"auto"``, ``"naive"`` or ``"triton"``.
        attention_bias: the teacher's q/k/v projections carry biases (Qwen2); mixers keep them.
        stream_vocab_sizes: multistream input (Moshi/Hibiki): the vocabulary of each input stream
            (text, then every audio codebook); one embedding per stream, summed per step. Empty:
            one flat token stream embedded with ``vocab_size``.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    pattern: list[str]
    mixers: dict[str, dict[str, Any]] = field(default_factory=dict)
    hidden_act: str = "silu"
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] = field(default_factory=dict)
    token_layout: dict[str, Any] = field(default_factory=dict)
    teacher: dict[str, Any] = field(default_factory=dict)
    impl: str = "auto"
    attention_bias: bool = False
    stream_vocab_sizes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.pattern, str):
            self.pattern = [self.pattern] * self.num_layers
        self.pattern = list(self.pattern)
        if len(self.pattern) != self.num_layers:
            raise ValueError(
                f"student.pattern has {len(self.pattern)} entries but num_layers={self.num_layers}; "
                "give one mixer kind per layer or a single kind for all"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}")
        self.stream_vocab_sizes = [int(v) for v in self.stream_vocab_sizes]
        if self.stream_vocab_sizes and self.tie_word_embeddings:
            raise ValueError("student.tie_word_embeddings=true needs a flat token stream; set it false for multistream input")
        if any(v < 1 for v in self.stream_vocab_sizes):
            raise ValueError(f"student.stream_vocab_sizes must all be ≥ 1, got {self.stream_vocab_sizes}")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "head_dim", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"student.{name} must be ≥ 1, got {getattr(self, name)}")

    @property
    def multistream(self) -> bool:
        """True when inputs are ``[B, S, T]`` streams embedded separately and summed."""
        return bool(self.stream_vocab_sizes)

    def mixer_options(self, kind: str) -> dict[str, Any]:
        return dict(self.mixers.get(kind, {}))

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudentConfig:
        d = dict(d)
        version = d.pop("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"student config format_version={version} is newer than this distill ({FORMAT_VERSION}); upgrade distill")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown student config fields {unknown}; known: {sorted(known)}")
        return cls(**d)


def student_config_from_teacher(
    geometry: Any,
    pattern: str | list[str] = "mamba2",
    mixers: dict[str, dict[str, Any]] | None = None,
    num_layers: int | None = None,
    token_layout: dict[str, Any] | None = None,
    teacher: dict[str, Any] | None = None,
    impl: str = "auto",
    attn_layers: list[int] | None = None,
) -> StudentConfig:
    """Build a student config with the teacher's geometry.

    Args:
        geometry: a :class:`teachers.base.TeacherGeometry`.
        pattern: one mixer kind for every layer, or one per layer.
        mixers: per-kind mixer options.
        num_layers: defaults to the teacher's; fewer layers take the teacher's first ones.
        attn_layers: hybrid shorthand: these layer indices become ``"attn"`` (the teacher's attention
            kept, see ``mixers.attn``) in ``pattern``; the resulting pattern is what the config records.
    """
    n = geometry.num_layers if num_layers is None else num_layers
    if n > geometry.num_layers:
        raise ValueError(f"student.num_layers={n} exceeds the teacher's {geometry.num_layers} layers")
    if attn_layers:
        pattern = [pattern] * n if isinstance(pattern, str) else list(pattern)
        for i in attn_layers:
            if not 0 <= i < len(pattern):
                raise ValueError(f"student.attn_layers has {i}, outside the student's layers 0..{len(pattern) - 1}")
            pattern[i] = "attn"
    return StudentConfig(
        vocab_size=geometry.vocab_size,
        hidden_size=geometry.hidden_size,
        num_layers=n,
        num_heads=geometry.num_heads,
        num_kv_heads=geometry.num_kv_heads,
        head_dim=geometry.head_dim,
        intermediate_size=geometry.intermediate_size,
        pattern=pattern,
        mixers=dict(mixers or {}),
        hidden_act=geometry.hidden_act,
        rms_norm_eps=geometry.rms_norm_eps,
        tie_word_embeddings=geometry.tie_word_embeddings,
        rope_theta=geometry.rope_theta,
        rope_scaling=dict(getattr(geometry, "rope_scaling", {}) or {}),
        token_layout=dict(token_layout or {}),
        teacher=dict(teacher or {}),
        impl=impl,
        attention_bias=geometry.attention_bias,
        stream_vocab_sizes=list(getattr(geometry, "stream_vocab_sizes", [])),
    )

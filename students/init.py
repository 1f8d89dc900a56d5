"""Initialising a student from a teacher: named weight maps and a report of what was done.

A teacher adapter (``teachers/``) exposes its weights by *role* (``embed`` — ``embed.{s}`` per input
stream for multistream teachers —, ``final_norm``,
``lm_head``, ``layers.{i}.input_norm``, ``layers.{i}.post_norm``, ``layers.{i}.mlp.{gate,up,down}``)
and its attention layers as :class:`AttentionWeights`. The tables below say which student
tensor each role fills; mixers hold their own attention maps (``Mixer.load_attention``).
Every tensor copied or initialised goes into an :class:`InitReport`, saved with the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

NamedTensor = tuple[str | None, Tensor | None]
NONE: NamedTensor = (None, None)


@dataclass
class AttentionWeights:
    """One teacher attention layer, each tensor with its name in the teacher checkpoint.

    Shapes (nn.Linear layout): q ``[H·hd, D]``, k and v ``[Hkv·hd, D]``, o ``[D, H·hd]``.
    """

    q: NamedTensor
    k: NamedTensor
    v: NamedTensor
    o: NamedTensor
    num_heads: int
    num_kv_heads: int
    head_dim: int
    q_bias: NamedTensor = NONE
    k_bias: NamedTensor = NONE
    v_bias: NamedTensor = NONE
    o_bias: NamedTensor = NONE


class TeacherWeights(Protocol):
    """What :func:`init_from_teacher` needs from a teacher (``teachers.base.TeacherAdapter`` provides it)."""

    def attention_weights(self, layer: int) -> AttentionWeights: ...

    def role_weight(self, role: str) -> NamedTensor: ...


@dataclass
class InitReport:
    """Which student tensors were copied from which teacher tensors, and which were initialised."""

    copied: list[dict] = field(default_factory=list)
    initialised: list[dict] = field(default_factory=list)

    @torch.no_grad()
    def copy(self, dst: Tensor, src: Tensor, student_name: str, teacher_name: str | None) -> None:
        if tuple(dst.shape) != tuple(src.shape):
            raise ValueError(
                f"init: {student_name} has shape {tuple(dst.shape)} but teacher tensor {teacher_name} "
                f"has {tuple(src.shape)}"
            )
        dst.copy_(src.to(dtype=dst.dtype, device=dst.device))
        self.copied.append({"student": student_name, "teacher": teacher_name, "shape": list(dst.shape)})

    def initialise(self, student_name: str, how: str) -> None:
        self.initialised.append({"student": student_name, "how": how})

    def covered(self) -> set[str]:
        """Student parameter names touched (``in_proj.weight[x]`` counts for ``in_proj.weight``)."""
        return {e["student"].split("[")[0] for e in self.copied + self.initialised}

    def uncovered(self, model: torch.nn.Module) -> list[str]:
        """Parameters the report says nothing about: a weight map that forgot one."""
        return sorted(set(dict(model.named_parameters())) - self.covered())

    @torch.no_grad()
    def verify(self, student: torch.nn.Module, teacher_tensors: dict[str, Tensor]) -> int:
        """Check every copied entry: the student tensor equals the teacher tensor it names, bit for bit.

        Names may carry a slice, ``[a:b]``, or (student side) a segment a module resolves with
        ``segment(name)`` (Mamba2's ``in_proj.weight[x]``). Returns the number of entries checked.
        """
        for e in self.copied:
            dst = _resolve(student, dict(student.named_parameters()), e["student"])
            src = _resolve(None, teacher_tensors, e["teacher"])
            if dst.shape != src.shape or not torch.equal(dst, src.to(dst)):
                raise AssertionError(f"init: {e['student']} does not equal teacher {e['teacher']}")
        return len(self.copied)

    def to_dict(self) -> dict:
        n_copied = len({e["student"].split("[")[0] for e in self.copied})
        return {"n_copied": len(self.copied), "n_params_touched_by_copy": n_copied, "copied": self.copied, "initialised": self.initialised}

    def save(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    def summary(self) -> str:
        return f"copied {len(self.copied)} tensors from the teacher, initialised {len(self.initialised)}"


def _resolve(model: torch.nn.Module | None, tensors: dict[str, Tensor], name: str) -> Tensor:
    """``"a.b.weight"``, ``"a.b.weight[3:7]"`` or ``"a.b.weight[x]"`` (``model.a.b.segment("x")``) → tensor."""
    base, _, index = name.partition("[")
    t = tensors[base]
    if not index:
        return t
    index = index.rstrip("]")
    if ":" in index:
        lo, hi = index.split(":")
        return t[int(lo) if lo else None : int(hi) if hi else None]
    return t[model.get_submodule(base.rsplit(".", 2)[0]).segment(index)]


def role_table(config) -> list[tuple[str, str]]:
    """(student parameter, teacher role) for everything outside the mixers: embeddings, norms, MLPs, head."""
    if config.stream_vocab_sizes:
        table = [(f"embeds.{s}.weight", f"embed.{s}") for s in range(len(config.stream_vocab_sizes))]
    else:
        table = [("embed.weight", "embed")]
    for i in range(config.num_layers):
        table += [
            (f"layers.{i}.input_norm.weight", f"layers.{i}.input_norm"),
            (f"layers.{i}.post_norm.weight", f"layers.{i}.post_norm"),
            (f"layers.{i}.mlp.gate_proj.weight", f"layers.{i}.mlp.gate"),
            (f"layers.{i}.mlp.up_proj.weight", f"layers.{i}.mlp.up"),
            (f"layers.{i}.mlp.down_proj.weight", f"layers.{i}.mlp.down"),
        ]
    table.append(("norm.weight", "final_norm"))
    if not config.tie_word_embeddings:
        table.append(("lm_head.weight", "lm_head"))
    return table


@torch.no_grad()
def init_from_teacher(student, teacher: TeacherWeights) -> InitReport:
    """Fill ``student`` (a :class:`students.model.StudentLM`) from ``teacher``.

    Embeddings, norms, MLPs and the head are copied 1:1 (the block is teacher-shaped); each
    mixer maps the teacher attention of the same layer index. Raises if a shape does not match,
    naming the student and teacher tensors.

    Returns:
        The :class:`InitReport`; ``report.uncovered(student)`` is empty for a complete map.
    """
    report = InitReport()
    params = dict(student.named_parameters())
    for student_name, role in role_table(student.config):
        teacher_name, tensor = teacher.role_weight(role)
        if tensor is None:
            raise ValueError(f"init: the teacher has no tensor for role {role!r} (needed by {student_name})")
        report.copy(params[student_name], tensor, student_name, teacher_name)
    for i, layer in enumerate(student.layers):
        layer.mixer.load_attention(teacher.attention_weights(i), report, f"layers.{i}.mixer")
    return report

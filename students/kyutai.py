"""Run an exported multistream student inside the kyutai ``moshi`` runtime (``LMModel`` + ``LMGen``).

A Babelbit miner runs a Hibiki-format ``moshi.models.lm.LMModel``. Per step ``LMModel.forward_text`` sums the
text and audio-codebook embeddings into ``[B, T, D]``, calls ``self.transformer(x, cross_attention_src=...)``,
applies ``self.out_norm`` when it is set, and reads the text head (and, in ``LMGen``, the depth transformer)
from the result. :func:`swap_backbone` replaces that temporal transformer with a student's blocks:

* ``lm.transformer`` becomes a :class:`StudentBackbone`-like ``StreamingModule`` over ``student.layers``
  (shared, not copied) that returns the residual stream after the last block, i.e. the same contract as
  moshi's ``StreamingTransformer`` (no final norm inside);
* ``lm.out_norm`` becomes ``student.norm``, so ``forward_text`` returns exactly the student's
  ``last_hidden_state`` (its trained final norm, computed in fp32 like the student's own forward) and the text
  head and depformer read it;
* ``lm``'s embeddings, text head and depformer stay (pass ``copy_embeddings=True`` to also copy the student's
  trained stream embeddings and text head into them).

Streaming: the backbone's streaming state holds a :class:`students.state.RecurrentState` created in
``_init_streaming_state(batch_size)``; ``reset_streaming(mask)`` zeroes the masked streams; streams whose
``exec_mask`` is false are left unchanged by a step (as moshi's own modules do). So
``with lm_gen.streaming(B): lm_gen.step(codes)`` runs the student at constant cost per frame.

The ``moshi`` package is optional: it is imported inside functions only, so ``students`` never needs it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

from students.model import StudentLM
from students.state import RecurrentState


@functools.cache
def _classes() -> tuple[type, type]:
    """Build the moshi-derived classes on first use (moshi imported lazily)."""
    from dataclasses import dataclass

    from moshi.modules.streaming import State, StreamingModule

    @dataclass
    class StudentBackboneState(State):
        """moshi streaming state wrapping the student's :class:`RecurrentState` (and a step counter for parity
        with moshi's transformer state)."""

        recurrent: RecurrentState | None = None
        offsets: Tensor | None = None

        def reset(self, reset_mask: Tensor) -> None:
            super().reset(reset_mask)
            reset = reset_mask.to(self.device)
            for t in (*(t for _, t in self.recurrent.items()), self.offsets):
                t.copy_(torch.where(reset.view(-1, *([1] * (t.dim() - 1))), torch.zeros((), dtype=t.dtype, device=t.device), t))

    class StudentBackbone(StreamingModule[StudentBackboneState]):
        """``lm.transformer`` replacement: the student's blocks over the summed input embeddings ``[B, T, D]``."""

        def __init__(self, student: StudentLM):
            super().__init__()
            self.config = student.config
            self.layers = student.layers  # shared with the student; LMModel keeps its own embeddings and heads
            self._student_ref = (student,)  # not a submodule: the student's embeddings/head stay out of lm's weights

        @property
        def student(self) -> StudentLM:
            return self._student_ref[0]

        def _param(self) -> Tensor:
            return next(self.layers.parameters())

        def _init_streaming_state(self, batch_size: int) -> StudentBackboneState:
            p = self._param()
            state = StudentBackboneState(batch_size, p.device)
            state.recurrent = self.student.allocate_state(batch_size, device=p.device)
            state.offsets = torch.zeros(batch_size, device=p.device, dtype=torch.long)
            return state

        @property
        def recurrent_state(self) -> RecurrentState | None:
            """The student's state while streaming, else None."""
            return None if self._streaming_state is None else self._streaming_state.recurrent

        def forward(self, x: Tensor, cross_attention_src: Tensor | None = None) -> Tensor:
            """x ``[B, T, D]`` (summed embeddings) → the last block's output ``[B, T, D]`` in x's dtype.

            Not streaming: the whole sequence from a zero state. Streaming: continues from the state; T == 1 uses
            the recurrent step, T > 1 the chunked forward (prefill); streams with a false exec_mask keep their state.
            """
            if cross_attention_src is not None:
                raise ValueError("student backbone: cross-attention conditioning is not supported (cross_attention_src must be None)")
            if x.dim() != 3 or x.shape[-1] != self.config.hidden_size:
                raise ValueError(f"student backbone: expected [B, T, {self.config.hidden_size}] embeddings, got {tuple(x.shape)}")
            dtype_in = x.dtype
            h = x.to(self._param().dtype)
            state = self._streaming_state
            if state is None:
                for layer in self.layers:
                    h = layer(h)
                return h.to(dtype_in)
            if h.shape[0] != state.batch_size:
                raise ValueError(f"student backbone: batch {h.shape[0]} but streaming with batch_size={state.batch_size}")
            rec = state.recurrent
            before = rec.clone()  # graph-safe exec_mask handling: no host sync, unconditional select
            if h.shape[1] == 1:
                y = h[:, 0]
                for i, layer in enumerate(self.layers):
                    y = layer.step(y, rec[i])
                h = y[:, None]
            else:
                for i, layer in enumerate(self.layers):
                    h = layer(h, rec[i])
            run = state.exec_mask
            for (_, t), (_, old) in zip(rec.items(), before.items(), strict=True):
                t.copy_(torch.where(run.view(-1, *([1] * (t.dim() - 1))), t, old))
            state.offsets.add_(run.to(state.offsets.dtype) * h.shape[1])
            return h.to(dtype_in)

    return StudentBackboneState, StudentBackbone


def student_backbone(student: StudentLM) -> nn.Module:
    """A moshi ``StreamingModule`` running ``student``'s blocks (see the module docstring)."""
    return _classes()[1](student)


def _check(field: str, lm_value: Any, student_value: Any, lm_name: str) -> None:
    if lm_value != student_value:
        raise ValueError(f"swap_backbone: student.{field}={student_value} does not match the LMModel's {lm_name}={lm_value}")


def check_compatible(lm: nn.Module, student: StudentLM) -> None:
    """Raise ``ValueError`` naming the first student config field that does not fit ``lm``."""
    cfg = student.config
    _check("hidden_size", lm.dim, cfg.hidden_size, "dim")
    if not cfg.multistream:
        raise ValueError(
            "swap_backbone: student.stream_vocab_sizes is empty (a flat-token student); a moshi LMModel needs a multistream "
            f"student with {lm.num_codebooks} streams (text, then {lm.n_q} audio codebooks)"
        )
    _check("stream_vocab_sizes (number of streams)", lm.num_codebooks, len(cfg.stream_vocab_sizes), "num_codebooks (1 + n_q)")
    _check("stream_vocab_sizes[0]", lm.text_emb.num_embeddings, cfg.stream_vocab_sizes[0], "text_emb rows (text_card + 1)")
    for s, v in enumerate(cfg.stream_vocab_sizes[1:], start=1):
        _check(f"stream_vocab_sizes[{s}]", lm.emb[s - 1].num_embeddings, v, f"emb[{s - 1}] rows (card + 1)")
    _check("vocab_size", lm.text_linear.out_features, cfg.vocab_size, "text_linear.out_features (text_card_out)")


def swap_backbone(lm: nn.Module, student: StudentLM, copy_embeddings: bool = False) -> nn.Module:
    """Replace ``lm.transformer`` (a moshi ``LMModel``) with ``student``'s blocks and ``lm.out_norm`` with its final norm.

    Args:
        lm: a ``moshi.models.lm.LMModel``; modified in place and returned. Call before entering streaming, or
            after leaving it (any ``LMGen`` over ``lm`` keeps working: it only calls ``lm.forward_text``).
        student: a multistream :class:`StudentLM` with the LMModel's width, streams and text vocabulary.
        copy_embeddings: also copy the student's stream embeddings and LM head into ``lm.text_emb``, ``lm.emb``
            and ``lm.text_linear`` (both use the order text, then audio codebooks 0..n_q-1), so ``forward_text``
            computes exactly the student's forward. Off: the LMModel keeps its own embeddings and text head.
    Raises:
        ValueError: naming the student field that does not match (``hidden_size``, ``stream_vocab_sizes``, ``vocab_size``),
            or when ``lm`` is streaming.
    """
    from moshi.modules.streaming import StreamingModule

    check_compatible(lm, student)
    if any(isinstance(m, StreamingModule) and m._streaming_state is not None for m in lm.modules()):
        raise ValueError("swap_backbone: the LMModel is streaming; swap before `with lm.streaming(...)` / `lm_gen.streaming(...)`")
    p = next(lm.text_linear.parameters())
    student.to(p.device)
    if copy_embeddings:
        _copy_embeddings(lm, student)
    lm.transformer = student_backbone(student)
    lm.out_norm = student.norm
    for m in lm.modules():  # moshi caches each module's streaming children; drop the caches that list the old transformer
        if isinstance(m, StreamingModule):
            m._cached_children = None
    return lm


@torch.no_grad()
def _copy_embeddings(lm: nn.Module, student: StudentLM) -> None:
    pairs = [("text_emb", lm.text_emb, "embeds.0", student.embeds[0])]
    pairs += [(f"emb.{k}", e, f"embeds.{k + 1}", student.embeds[k + 1]) for k, e in enumerate(lm.emb)]
    pairs += [("text_linear", lm.text_linear, "lm_head", student.lm_head)]
    for lm_name, mine, st_name, theirs in pairs:
        if any(getattr(mine, a, None) not in (None, False) for a in ("low_rank", "norm", "demux_second_stream")):
            why = f"lm.{lm_name} is low-rank, normed or demuxed; it cannot take student.{st_name}"
            raise ValueError(f"swap_backbone(copy_embeddings=True): {why}")
        if mine.weight.shape != theirs.weight.shape:
            have, want = tuple(theirs.weight.shape), tuple(mine.weight.shape)
            raise ValueError(f"swap_backbone: student.{st_name} is {have} but lm.{lm_name} is {want}")
        mine.weight.copy_(theirs.weight)
    if lm.text_linear.bias is not None:  # the student's head has no bias
        lm.text_linear.bias.zero_()

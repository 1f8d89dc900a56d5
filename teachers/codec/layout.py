"""The flat Hibiki-like token layout a Llama teacher reads: source and delayed target codes interleaved per frame.

At each 12.5 Hz step ``t`` the sequence holds the source frame ``t``'s K codes, then the target frame ``t - delay``'s K
codes: ``[s_0(t) .. s_{K-1}(t), y_0(t-d) .. y_{K-1}(t-d)]`` (2K tokens per step). Code ``c`` of stream ``s`` codebook
``k`` becomes token ``num_special + (s * K + k) * codebook_size + c``. Specials fill the slots that hold no code:

* ``pad`` (0): right padding added by batching code; never inside an utterance; masked out of every loss.
* ``src_end`` (1): source slots after the source has ended (the model is told that input is over, like Hibiki's
  end-of-input frame, and keeps going until the target is done).
* ``tgt_wait`` (2): target slots of the first ``delay`` steps (the target has not started yet).
* ``tgt_end`` (3): target slots after the target has ended; every utterance ends with at least one such step, so the
  model learns when to stop (the miner's ``out_eos``).

An utterance with source length ``Ts`` and target length ``Tt`` frames spans ``max(Ts, Tt + delay) + 1`` steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

SPECIALS = {"pad": 0, "src_end": 1, "tgt_wait": 2, "tgt_end": 3}
STREAMS = ("source", "target")


@dataclass
class FlatLayout:
    num_codebooks: int
    codebook_size: int
    delay: int = 2
    frame_rate: float = 12.5
    special_tokens: dict[str, int] = field(default_factory=lambda: dict(SPECIALS))

    @property
    def num_special(self) -> int:
        return len(self.special_tokens)

    @property
    def tokens_per_step(self) -> int:
        return 2 * self.num_codebooks

    @property
    def vocab_size(self) -> int:
        return self.num_special + 2 * self.num_codebooks * self.codebook_size

    def offset(self, stream: str, codebook: int) -> int:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; known: {STREAMS}")
        return self.num_special + (STREAMS.index(stream) * self.num_codebooks + codebook) * self.codebook_size

    def num_steps(self, src_frames: int, tgt_frames: int) -> int:
        return max(src_frames, tgt_frames + self.delay) + 1

    def flatten(self, src: Tensor, tgt: Tensor) -> Tensor:
        """``src [K, Ts]``, ``tgt [K, Tt]`` codes → ``input_ids [steps * 2K]`` int64."""
        k, c = self.num_codebooks, self.codebook_size
        if src.shape[0] != k or tgt.shape[0] != k:
            raise ValueError(f"expected {k} codebooks per stream, got src {tuple(src.shape)} tgt {tuple(tgt.shape)}")
        if (src.min() < 0 or src.max() >= c) if src.numel() else False:
            raise ValueError("source codes out of range")
        ts, tt = src.shape[1], tgt.shape[1]
        steps = self.num_steps(ts, tt)
        grid = torch.empty(steps, 2 * k, dtype=torch.long)
        grid[:, :k] = self.special_tokens["src_end"]
        grid[:ts, :k] = src.T.long() + self._offsets("source")
        grid[:, k:] = self.special_tokens["tgt_end"]
        grid[: self.delay, k:] = self.special_tokens["tgt_wait"]
        grid[self.delay : self.delay + tt, k:] = tgt.T.long() + self._offsets("target")
        return grid.reshape(-1)

    def unflatten(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``input_ids [steps * 2K]`` (no right padding) → ``(src [K, Ts], tgt [K, Tt])`` codes.

        A step's stream slots count as codes only when all K are codes of the right stream and codebook.
        """
        k = self.num_codebooks
        if ids.numel() % (2 * k):
            raise ValueError(f"sequence length {ids.numel()} is not a multiple of {2 * k} tokens per step")
        grid = ids.reshape(-1, 2 * k).long()
        src = grid[:, :k] - self._offsets("source")
        tgt = grid[self.delay :, k:] - self._offsets("target")
        src = src[((src >= 0) & (src < self.codebook_size)).all(1)]
        tgt = tgt[((tgt >= 0) & (tgt < self.codebook_size)).all(1)]
        return src.T.contiguous(), tgt.T.contiguous()

    def _offsets(self, stream: str) -> Tensor:
        return torch.tensor([self.offset(stream, i) for i in range(self.num_codebooks)])

    def slot_of(self, position: Tensor) -> tuple[Tensor, Tensor]:
        """Token positions ``[..]`` → (stream index 0/1, codebook index) of each position within its step."""
        j = position % (2 * self.num_codebooks)
        return j // self.num_codebooks, j % self.num_codebooks

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update({
            "format": "flat_interleaved_v1",
            "streams": list(STREAMS),
            "tokens_per_step": self.tokens_per_step,
            "num_special": self.num_special,
            "vocab_size": self.vocab_size,
            "pad_token_id": self.special_tokens["pad"],
            "offsets": {s: [self.offset(s, i) for i in range(self.num_codebooks)] for s in STREAMS},
            "step_order": "source codebooks 0..K-1 of frame t, then target codebooks 0..K-1 of frame t-delay",
        })
        return d

    def to_token_layout(self):
        """The project-wide :class:`teachers.layout.TokenLayout` view (ids of the code slices agree; the per-stream delay
        and the specials are what this class adds)."""
        from teachers.layout import TokenLayout

        return TokenLayout(kind="flat_frames", num_codebooks=self.num_codebooks, codebook_size=self.codebook_size,
                           num_streams=2, offset=self.num_special, frame_rate_hz=self.frame_rate)

    @classmethod
    def from_dict(cls, d: dict) -> FlatLayout:
        return cls(d["num_codebooks"], d["codebook_size"], d.get("delay", 2), d.get("frame_rate", 12.5),
                   dict(d.get("special_tokens", SPECIALS)))

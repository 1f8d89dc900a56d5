"""Moshi/Hibiki multistream teachers (transformers' ``MoshiForConditionalGeneration``).

The unit is ``MoshiForConditionalGeneration``, not ``MoshiForCausalLM``: the latter is only the
temporal transformer with a text embedding and head, while the former also holds the per-codebook
audio embeddings (``embed_tokens.{0..2K-1}``, the model's own stream then the user's), the depth
decoder and the Mimi codec. Per frame the temporal transformer (``decoder``, a MoshiForCausalLM)
reads the sum of the text embedding and 2K audio embeddings; the depth decoder turns its output
into the next frame's K audio codebooks.

Only the temporal transformer is distilled. Its input is ``input_ids [B, S, T]`` with S = 1 + 2K
streams in the order text, model audio codebooks 0..K-1, user audio codebooks 0..K-1, already
delayed (the token layout records the delays). The depth decoder stays frozen inside the adapter:
``depth_logits`` runs it teacher-forced on any temporal hidden states (the teacher's or a
student's), so audio logits can be distilled through it.

Block math matches the student's: MoshiRMSNorm is ``x / rms(x) * weight`` in fp32 (no Gemma-style
``1 + weight``), and MoshiGatingMLP's fused ``fc1`` rows are ``[gate; up]`` (``act(h[:F]) * h[F:]``),
so ``fc1.weight[:F]`` / ``fc1.weight[F:]`` copy exactly into the student's gate/up projections.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from students.init import NONE, AttentionWeights, NamedTensor
from teachers.base import TeacherAdapter, TeacherGeometry, TeacherOutput, capture_input, hf_geometry
from teachers.layout import TokenLayout

# model_type → transformers class names (the same shape as teachers.llama.LLAMA_FAMILY)
MOSHI_FAMILY = {"moshi": ("MoshiConfig", "MoshiForConditionalGeneration")}


def moshi_stream_vocab_sizes(config) -> list[int]:
    """Embedding rows per input stream: text (vocab + 1 for its initial/pad token), then 2K audio (codebook + 1)."""
    return [config.vocab_size + 1] + [config.audio_vocab_size + 1] * (2 * config.num_codebooks)


def moshi_geometry(config) -> TeacherGeometry:
    """The temporal transformer's geometry; ``vocab_size`` is the text head's, the MLP width is ``ffn_dim / 2``."""
    return hf_geometry(
        config,
        intermediate_size=config.ffn_dim // 2,
        tie_word_embeddings=False,
        attention_bias=False,
        stream_vocab_sizes=moshi_stream_vocab_sizes(config),
    )


def default_moshi_layout(config) -> dict:
    """Moshi's layout: 2 audio streams of K codebooks, acoustic codebooks one frame behind the semantic one."""
    K = config.num_codebooks
    return TokenLayout(
        kind="multistream", num_codebooks=K, codebook_size=config.audio_vocab_size, num_streams=2,
        frame_rate_hz=12.5, delays=[0] + [1] * (K - 1), text_vocab_size=config.vocab_size,
    ).to_dict()


class MoshiTeacher(TeacherAdapter):
    """Adapter for ``MoshiForConditionalGeneration``: the temporal transformer by role, the depth decoder frozen.

    Args:
        model: a ``MoshiForConditionalGeneration``.
        token_layout: layout metadata (default: :func:`default_moshi_layout`).
        audio_logits: also return ``audio_logits`` from ``forward`` (the depth decoder teacher-forced).
    """

    kind = "moshi"

    def __init__(self, model: nn.Module, token_layout: dict | None = None, source: str | None = None, audio_logits: bool = False):
        if model.config.model_type not in MOSHI_FAMILY or not hasattr(model, "depth_decoder"):
            raise ValueError(
                f"MoshiTeacher needs a MoshiForConditionalGeneration (model_type 'moshi' with a depth decoder), "
                f"got {type(model).__name__} with model_type={model.config.model_type!r}"
            )
        layout = token_layout if token_layout else default_moshi_layout(model.config)
        super().__init__(model, moshi_geometry(model.config), layout, source)
        self.audio_logits = audio_logits
        self.num_codebooks = model.config.num_codebooks
        self.audio_vocab_size = model.config.audio_vocab_size

    @property
    def num_streams(self) -> int:
        return len(self.geometry.stream_vocab_sizes)

    def _check_ids(self, input_ids: Tensor) -> None:
        if input_ids.dim() != 3 or input_ids.shape[1] != self.num_streams:
            raise ValueError(
                f"moshi teacher: input_ids must be [B, S={self.num_streams}, T] (text, {self.num_codebooks} model "
                f"and {self.num_codebooks} user audio codebooks), got {tuple(input_ids.shape)}"
            )

    def embed(self, input_ids: Tensor) -> Tensor:
        """input_ids ``[B, S, T]`` → the temporal transformer's input ``[B, T, D]`` (HF's order of summation)."""
        self._check_ids(input_ids)
        m = self.model
        audio = sum(m.embed_tokens[c](input_ids[:, 1 + c]) for c in range(2 * self.num_codebooks))
        return audio + m.decoder.model.embed_tokens(input_ids[:, 0])

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        output_hidden_states: bool = False,
        audio_logits: bool | None = None,
    ) -> TeacherOutput:
        """input_ids ``[B, S, T]`` → text logits ``[B, T, V]``, temporal hidden states ``[B, T, D]``.

        Args:
            attention_mask: ``[B, T]``, 1 for real frames (right padding only).
            audio_logits: return ``audio_logits [B, T-1, K, V_audio]`` (default: the adapter's setting).
        """
        decoder = self.model.decoder
        with capture_input(decoder.model.norm) as pre_norm:
            out = decoder(
                inputs_embeds=self.embed(input_ids), attention_mask=attention_mask,
                output_hidden_states=True, use_cache=False, return_dict=True,
            )
        hidden = (*out.hidden_states[:-1], pre_norm[-1]) if output_hidden_states else None
        last = out.last_hidden_state
        audio = None
        if self.audio_logits if audio_logits is None else audio_logits:
            audio = self.depth_logits(last[:, :-1], input_ids[:, :, 1:])
        return TeacherOutput(out.logits, hidden, last, audio)

    def depth_logits(self, temporal_hidden: Tensor, next_ids: Tensor) -> Tensor:
        """Audio logits of the next frame from the frozen depth decoder, teacher-forced.

        Args:
            temporal_hidden: final-norm outputs ``[B, T, D]`` at steps t (teacher's or student's).
            next_ids: the frames they predict, ``[B, S, T]`` (``input_ids[:, :, 1:]`` for ``hidden[:, :-1]``).
        Returns:
            ``[B, T, K, V_audio]``: codebook k read the text token and codebooks < k of that frame.
        Gradients flow into ``temporal_hidden``; the depth decoder's weights are frozen.
        """
        self._check_ids(next_ids)
        B, T, D = temporal_hidden.shape
        K = self.num_codebooks
        if next_ids.shape[-1] != T:
            raise ValueError(f"depth_logits: next_ids has {next_ids.shape[-1]} frames but temporal_hidden has {T}")
        # depth inputs per frame: the text token, then the model stream's codebooks 0..K-2
        ids = next_ids[:, :K].permute(0, 2, 1).reshape(B * T, K)
        mask = torch.ones_like(ids)  # explicit, so every attention backend applies the causal mask
        out = self.model.depth_decoder(
            input_ids=ids, last_hidden_state=temporal_hidden.reshape(B * T, 1, D), attention_mask=mask,
            use_cache=False, return_dict=True,
        )
        return out.logits.reshape(B, T, K, -1)

    @torch.no_grad()
    def sample_sequences(
        self, num_sequences: int, length: int, seed: int = 0, temperature: float = 1.0, batch_size: int = 32
    ) -> list:
        """Multistream sequences drawn from the teacher, for smoke runs on random teachers.

        Per frame: the text token from the text head, the model stream's K codebooks one by one from
        the depth decoder, the user stream uniform (it is input, never predicted); the first frame is
        uniform. Delays are not modelled: real runs distil on real (delayed) codec data.

        Returns:
            ``num_sequences`` rows of ``[S][length]`` token ids (the token datasets' multistream rows).
        """
        g = torch.Generator().manual_seed(seed)
        device = next(self.parameters()).device
        K, Va, V = self.num_codebooks, self.audio_vocab_size, self.geometry.vocab_size
        highs = [V] + [Va] * (2 * K)

        def draw(logits: Tensor) -> Tensor:
            probs = torch.softmax(logits.float().cpu() / temperature, -1)
            return torch.multinomial(probs, 1, generator=g)[:, 0]

        rows: list = []
        for start in range(0, num_sequences, batch_size):
            b = min(batch_size, num_sequences - start)
            ids = torch.stack([torch.randint(0, h, (b,), generator=g) for h in highs], 1)[:, :, None]
            for _ in range(length - 1):
                out = self(ids.to(device), audio_logits=False)
                frame = torch.zeros(b, len(highs), dtype=torch.long)
                frame[:, 0] = draw(out.logits[:, -1])
                h = out.last_hidden_state[:, -1:]
                for k in range(K):  # codebook k reads the text and codebooks < k only, so later zeros are unseen
                    frame[:, 1 + k] = draw(self.depth_logits(h, frame[:, :, None].to(device))[:, 0, k])
                frame[:, 1 + K :] = torch.randint(0, Va, (b, K), generator=g)
                ids = torch.cat([ids, frame[:, :, None]], -1)
            rows.extend(ids.tolist())
        return rows

    def attention_weights(self, layer: int) -> AttentionWeights:
        return self._attention_by_names(layer, f"decoder.model.layers.{layer}.self_attn", suffix=".linear")

    def role_weight(self, role: str) -> NamedTensor:
        fixed = {"final_norm": "decoder.model.norm.weight", "lm_head": "decoder.lm_head.weight"}
        if role in fixed:
            return self._named(fixed[role])
        parts = role.split(".")
        if parts[0] == "embed" and len(parts) == 2 and parts[1].isdigit():
            s = int(parts[1])
            if s == 0:
                return self._named("decoder.model.embed_tokens.weight")
            if s <= 2 * self.num_codebooks:
                return self._named(f"embed_tokens.{s - 1}.weight")
        if parts[0] == "layers" and len(parts) >= 3:
            i, rest = parts[1], ".".join(parts[2:])
            p = f"decoder.model.layers.{i}"
            names = {
                "input_norm": "input_layernorm.weight",
                "post_norm": "post_attention_layernorm.weight",
                "mlp.down": "mlp.fc2.weight",
            }
            if rest in names:
                return self._named(f"{p}.{names[rest]}")
            if rest in ("mlp.gate", "mlp.up"):
                name, fc1 = self._named(f"{p}.mlp.fc1.weight")
                if fc1 is None:
                    return NONE
                F = fc1.shape[0] // 2
                return (f"{name}[:{F}]", fc1[:F]) if rest == "mlp.gate" else (f"{name}[{F}:]", fc1[F:])
        raise KeyError(
            f"MoshiTeacher has no role {role!r}; roles: embed.0..embed.{2 * self.num_codebooks} (text, then audio "
            "codebooks), final_norm, lm_head, layers.{i}.{input_norm,post_norm,mlp.gate,mlp.up,mlp.down}"
        )

    def attention_modules(self) -> list[nn.Module]:
        return [layer.self_attn for layer in self.model.decoder.model.layers]

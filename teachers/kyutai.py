"""Teachers in the kyutai ``moshi`` package's own format (``moshi.models.lm.LMModel``: Moshi, Hibiki).

A Babelbit miner's reference model is a Hibiki ``LMModel``; this adapter distils it without a conversion to
transformers' format. Per frame the temporal transformer reads the sum of ``emb[k](codes[:, 1 + k])`` over the
``n_q`` audio codebooks and ``text_emb(codes[:, 0])`` (``LMModel.forward_text``), runs its layers, applies
``out_norm`` and the text head ``text_linear``; the depformer turns the final-norm output into the next
frame's ``dep_q`` generated codebooks.

Input: ``input_ids [B, 1 + n_q, T]``: text, then the ``dep_q`` generated codebooks, then the
``n_q - dep_q`` input codebooks, *already delayed* (the sequence ``forward_text`` reads; the initial tokens
are ``text_card`` and ``card``). ``LMModel.forward(codes)`` delays undelayed codes, prepends the initial
frame and drops the last one, so its text logits equal this adapter's logits on that delayed sequence.
The zero token ``-1`` (an all-zero embedding in moshi) is refused: the student's embeddings are lookups.

Block math (moshi ``StreamingTransformerLayer``) and how it maps onto the student's block:

* norms: ``RMSNorm`` ``x * alpha * rsqrt(eps + mean(x²))`` (``rms_norm_f32``: fp32, eps 1e-8;
  ``rms_norm``: eps 1e-5), ``alpha [1, 1, D]`` → the student's ``weight [D]`` (same values, flattened);
* attention: ``in_projs.0.weight`` (``in_proj_weight`` in checkpoints) is ``[q; k; v]``, each head-major
  ``(h d)``; k/v have ``num_heads / kv_repeat`` heads, query head j reads KV head ``j // kv_repeat``
  (as GQA); no biases; scale ``head_dim**-0.5``; causal, limited to ``context`` frames;
* RoPE at ``max_period``: ``positional_embedding="rope"`` rotates *interleaved* pairs ``(2i, 2i+1)``, the
  student rotate-half pairs ``(i, i + hd/2)`` at the same frequencies. Permuting each q and k head's rows
  to ``[0, 2, 4, …, 1, 3, 5, …]`` maps one onto the other exactly (q·k is unchanged by a shared
  permutation); ``"rope_concat"`` is already rotate-half;
* gating FFN ``linear_out(act(h[..., :F]) * h[..., F:])`` with ``h = linear_in(x)``: rows ``[:F]`` → gate,
  ``[F:]`` → up, ``linear_out`` → down;
* layer scale (``layer_scale`` not None): ``x + s ⊙ f(x)`` is folded into the last projection of ``f``
  (``diag(s)·out_proj``, ``diag(s)·linear_out``), which is exact.

Refused (``KyutaiTeacher`` raises naming the option): sinusoidal or no positional embedding, cross-attention
or sum conditioning, a non-gated FFN or an activation other than silu/gelu, LayerNorm, weights per step in the
temporal transformer, skipped self-attention, non-causal attention, a text-head bias, embedding norms,
low-rank or demuxed text embeddings, quantized or LoRA linears.

Derived tensors (q/k rows in rotate-half order, projections times the layer scale) are named
``<parameter>:<what>`` in init reports; :meth:`KyutaiTeacher.teacher_tensors` returns every name the role
maps hand out with its tensor, so ``InitReport.verify`` checks them bit for bit.

The ``moshi`` package is optional and imported lazily (:func:`moshi_modules`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from students.init import AttentionWeights, NamedTensor
from teachers.base import AttentionCapture, TeacherAdapter, TeacherGeometry, TeacherOutput, require_files
from teachers.layout import TokenLayout

MOSHI_INSTALL = "pip install --no-deps moshi==0.2.13 sphn sentencepiece"
# Keys of a kyutai config.json that describe the checkpoint around the LM, not LMModel arguments
# (moshi.models.loaders.CheckpointInfo pops the same ones).
NON_LM_KEYS = (
    "moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name", "lora_name", "model_type",
    "lm_gen_config", "tts_config", "stt_config", "model_id",
)
ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu}


def moshi_modules():
    """``(moshi.models.lm, moshi.modules.transformer, moshi.modules.gating, moshi.utils.compile)``, imported on first use."""
    names = ("moshi.models.lm", "moshi.modules.transformer", "moshi.modules.gating", "moshi.utils.compile")
    try:
        return tuple(importlib.import_module(n) for n in names)
    except ImportError as e:
        raise ImportError(f"teacher.kind='kyutai' needs the kyutai moshi package ({e}); install it with: {MOSHI_INSTALL}") from e


def _eager():
    """moshi torch.compiles its norms, RoPE and gating on first use; the adapter runs them eagerly (same math,
    no minutes-long compile per new sequence length)."""
    return moshi_modules()[3].no_compile()


def _refuse(option: str, why: str) -> None:
    raise ValueError(f"kyutai teacher: {option} is not supported: {why}")


def _activation_name(fn) -> str | None:
    return next((name for name, f in ACTIVATIONS.items() if fn is f), None)


def check_supported(lm: nn.Module) -> None:
    """Raise ``ValueError`` naming the first ``LMModel`` option the student cannot represent, and the fix."""
    _, tr, gating, _ = moshi_modules()
    if getattr(lm, "condition_provider", None) is not None or getattr(lm, "fuser", None) is not None:
        why = "it adds a sum or cross-attention input the student has no port for; build the LMModel without them"
        _refuse("conditioning (conditioners / fuser)", why)
    embeddings = [("text_emb", lm.text_emb)] + [(f"emb.{k}", e) for k, e in enumerate(lm.emb)]
    for name, emb in embeddings:
        if emb.norm is not None:
            _refuse(f"norm_emb=true ({name} is followed by a LayerNorm)", "the student's stream embeddings are plain lookups")
        if emb.low_rank is not None or emb.demux_second_stream:
            _refuse(f"a low-rank or demuxed embedding ({name})", "the student's stream embeddings are plain lookups")
    if lm.text_linear.bias is not None:
        _refuse("bias_proj=true (text_linear has a bias)", "the student's LM head has none")
    t = lm.transformer
    if t.positional_embedding not in ("rope", "rope_concat"):
        _refuse(
            f"positional_embedding={t.positional_embedding!r}",
            "the student's kept attention applies RoPE and nothing else (sinusoidal embeddings are added to its input); "
            "use 'rope' or 'rope_concat'",
        )
    norm_eps = set()
    for i, layer in enumerate(t.layers):
        where = f"layer {i}"
        if layer.skip_self_attn:
            _refuse(f"skip_self_attn ({where})", "every student block has a mixer in place of self-attention")
        if layer.cross_attention is not None:
            _refuse(f"cross_attention=true ({where})", "the student has no cross-attention")
        attn = layer.self_attn
        if not attn.causal:
            _refuse(f"causal=false ({where})", "a recurrent student is causal")
        if attn.weights_per_step or isinstance(layer.gating, nn.ModuleList):
            _refuse(f"weights_per_step in the temporal transformer ({where})", "the student has one set of weights for every frame")
        if not isinstance(layer.gating, gating.ActivationGating):
            why = "the student's MLP is gated (down(act(gate(x)) * up(x))); use gating='silu'"
            _refuse(f"gating='none' ({where}: linear1/linear2 FFN)", why)
        if _activation_name(layer.gating.activation) is None:
            _refuse(f"gating activation {layer.gating.activation!r} ({where})", f"the student's MLP supports {sorted(ACTIVATIONS)}")
        linears = [attn.in_projs[0], attn.out_projs[0], layer.gating.linear_in, layer.gating.linear_out]
        if any(type(m) is not nn.Linear for m in linears):
            _refuse(f"quantize=true or LoRA ({where})", "weights must be plain nn.Linear; load the unquantized checkpoint with LoRA fused")
        for norm in (layer.norm1, layer.norm2):
            if not isinstance(norm, tr.RMSNorm):
                _refuse(f"norm={type(norm).__name__} ({where})", "the student's norms are RMSNorm; use norm='rms_norm_f32' or 'rms_norm'")
            norm_eps.add(norm.eps)
        for ls in (layer.layer_scale_1, layer.layer_scale_2):
            if not isinstance(ls, (nn.Identity, tr.LayerScale)):
                _refuse(f"layer scale module {type(ls).__name__} ({where})", "only moshi's LayerScale is folded into the projections")
    if not isinstance(lm.out_norm, tr.RMSNorm):
        _refuse(f"out_norm={type(lm.out_norm).__name__}", "the student's final norm is RMSNorm")
    norm_eps.add(lm.out_norm.eps)
    if len(norm_eps) != 1:
        _refuse(f"norms with different eps {sorted(norm_eps)}", "the student has one rms_norm_eps")
    activations = {_activation_name(layer.gating.activation) for layer in t.layers}
    if len(activations) != 1:
        _refuse(f"mixed gating activations {sorted(activations)}", "the student has one hidden_act")


def kyutai_geometry(lm: nn.Module) -> TeacherGeometry:
    """The temporal transformer's geometry; ``vocab_size`` is the text head's (``text_card_out``)."""
    layer = lm.transformer.layers[0]
    attn = layer.self_attn
    return TeacherGeometry(
        vocab_size=lm.text_linear.out_features,
        hidden_size=lm.dim,
        num_layers=len(lm.transformer.layers),
        num_heads=attn.num_heads,
        num_kv_heads=attn.num_heads // attn.kv_repeat,
        head_dim=lm.dim // attn.num_heads,
        intermediate_size=layer.gating.linear_out.in_features,
        hidden_act=_activation_name(layer.gating.activation),
        rms_norm_eps=float(lm.out_norm.eps),
        rope_theta=float(lm.transformer.max_period),
        tie_word_embeddings=False,
        attention_bias=False,
        max_position_embeddings=int(attn.context) if attn.context is not None else 4096,
        stream_vocab_sizes=[lm.text_emb.num_embeddings] + [e.num_embeddings for e in lm.emb],
    )


def default_kyutai_layout(lm: nn.Module) -> dict:
    """Layout from the LMModel: ``n_q / dep_q`` audio streams of ``dep_q`` codebooks (Hibiki: generated, then input).

    Raises when the audio delays differ between streams (TokenLayout keeps one delay list per codebook);
    pass ``teacher.token_layout`` explicitly then.
    """
    n_q, K = lm.n_q, lm.dep_q
    if K == 0 or n_q % K:
        K = n_q
    S = n_q // K
    delays = list(lm.delays[1:])
    if delays != delays[:K] * S:
        raise ValueError(
            f"kyutai teacher: audio delays {delays} differ between the {S} streams of {K} codebooks; "
            "give teacher.token_layout explicitly"
        )
    return TokenLayout(
        kind="multistream", num_codebooks=K, codebook_size=lm.card, num_streams=S, frame_rate_hz=12.5,
        delays=delays[:K], text_vocab_size=lm.text_card,
    ).to_dict()


class KyutaiTeacher(TeacherAdapter):
    """Adapter for a kyutai ``LMModel``: the temporal transformer by role, the depformer frozen.

    Args:
        model: a ``moshi.models.lm.LMModel`` (checked with :func:`check_supported`).
        token_layout: layout metadata (default: :func:`default_kyutai_layout`).
        audio_logits: also return ``audio_logits`` from ``forward`` (the depformer teacher-forced).
        lm_kwargs: the LMModel's constructor arguments (needed to save it as a local checkpoint).
    """

    kind = "kyutai"

    def __init__(
        self, model: nn.Module, token_layout: dict | None = None, source: str | None = None,
        audio_logits: bool = False, lm_kwargs: dict | None = None,
    ):
        lm_mod = moshi_modules()[0]
        if not isinstance(model, lm_mod.LMModel):
            raise ValueError(f"KyutaiTeacher needs a moshi.models.lm.LMModel, got {type(model).__name__}")
        check_supported(model)
        layout = token_layout if token_layout else default_kyutai_layout(model)
        super().__init__(model, kyutai_geometry(model), layout, source)
        self.audio_logits = audio_logits
        self.lm_kwargs = dict(lm_kwargs) if lm_kwargs is not None else None
        self.num_codebooks = model.n_q
        self.dep_q = model.dep_q
        self.audio_vocab_size = model.card
        self.interleaved_rope = model.transformer.positional_embedding == "rope"

    @property
    def num_streams(self) -> int:
        return len(self.geometry.stream_vocab_sizes)

    def _check_ids(self, input_ids: Tensor, name: str = "input_ids") -> None:
        S = self.num_streams
        if input_ids.dim() != 3 or input_ids.shape[1] != S:
            raise ValueError(
                f"kyutai teacher: {name} must be [B, S={S}, T] (text, then {self.num_codebooks} audio codebooks: "
                f"{self.dep_q} generated, {self.num_codebooks - self.dep_q} input), got {tuple(input_ids.shape)}"
            )
        if input_ids.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"kyutai teacher: {name} must be integer token ids, got {input_ids.dtype}")
        if input_ids.numel():
            highs = torch.tensor(self.geometry.stream_vocab_sizes, device=input_ids.device)
            low, high = input_ids.amin(dim=(0, 2)), input_ids.amax(dim=(0, 2))
            bad = ((low < 0) | (high >= highs)).nonzero()
            if len(bad):
                s = int(bad[0])
                raise ValueError(
                    f"kyutai teacher: {name} stream {s} holds ids in [{int(low[s])}, {int(high[s])}] but must lie in "
                    f"[0, {int(highs[s])}) (moshi's zero token -1 has no student embedding; the initial token is the last id)"
                )

    def embed(self, input_ids: Tensor) -> Tensor:
        """input_ids ``[B, S, T]`` → the temporal transformer's input ``[B, T, D]`` (forward_text's order of summation)."""
        self._check_ids(input_ids)
        m = self.model
        x = None
        for k in range(self.num_codebooks):
            e = m.emb[k](input_ids[:, 1 + k])
            x = e if x is None else x + e
        text = m.text_emb(input_ids[:, 0])
        return text if x is None else x + text

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        output_hidden_states: bool = False,
        audio_logits: bool | None = None,
    ) -> TeacherOutput:
        """input_ids ``[B, S, T]`` (delayed) → next-frame text logits ``[B, T, V]``, temporal hidden states ``[B, T, D]``.

        Args:
            attention_mask: ``[B, T]`` right padding only; causal attention never reads later frames, so it
                changes nothing and is not used.
            audio_logits: return ``audio_logits [B, T-1, dep_q, card]`` (default: the adapter's setting).
        """
        with _eager():
            h = self.embed(input_ids)
            hidden = [h]
            for layer in self.model.transformer.layers:
                h = layer(h)
                hidden.append(h)
            last = self.model.out_norm(h)
            logits = self.model.text_linear(last)
            audio = None
            if self.audio_logits if audio_logits is None else audio_logits:
                audio = self.depth_logits(last[:, :-1], input_ids[:, :, 1:])
        return TeacherOutput(logits, tuple(hidden) if output_hidden_states else None, last, audio)

    def depth_logits(self, temporal_hidden: Tensor, next_ids: Tensor) -> Tensor:
        """Audio logits of the next frame from the frozen depformer, teacher-forced (``LMModel.forward_depformer_training``).

        Args:
            temporal_hidden: final-norm outputs ``[B, T, D]`` at steps t (teacher's or student's).
            next_ids: the frames they predict, ``[B, S, T]`` (``input_ids[:, :, 1:]`` for ``hidden[:, :-1]``).
        Returns:
            ``[B, T, dep_q, card]``: codebook k read the frame's text token and generated codebooks < k.
        Gradients flow into ``temporal_hidden``; the depformer's weights are frozen.
        """
        if self.dep_q == 0:
            raise ValueError("kyutai teacher: dep_q=0, the LMModel has no depformer (no audio logits)")
        self._check_ids(next_ids, "next_ids")
        if next_ids.shape[-1] != temporal_hidden.shape[1]:
            raise ValueError(f"depth_logits: next_ids has {next_ids.shape[-1]} frames but temporal_hidden has {temporal_hidden.shape[1]}")
        with _eager():
            logits = self.model.forward_depformer_training(next_ids, temporal_hidden)  # [B, dep_q, T, card]
        return logits.transpose(1, 2)

    @torch.no_grad()
    def sample_sequences(
        self, num_sequences: int, length: int, seed: int = 0, temperature: float = 1.0, batch_size: int = 32
    ) -> list:
        """Multistream sequences drawn from the teacher, for smoke runs on random teachers.

        The first frame holds the initial tokens (``text_card``, ``card``), as in ``LMModel.forward``; per later
        frame: the text token from the text head, the ``dep_q`` generated codebooks one by one from the
        depformer, the input codebooks uniform (they are never predicted). Delays are not modelled: real runs
        distil on real (delayed) codec data.

        Returns:
            ``num_sequences`` rows of ``[S][length]`` token ids.
        """
        g = torch.Generator().manual_seed(seed)
        device = next(self.parameters()).device
        S, Kd, card = self.num_streams, self.dep_q, self.audio_vocab_size
        text_high = min(self.geometry.vocab_size, self.geometry.stream_vocab_sizes[0])

        def draw(logits: Tensor, high: int) -> Tensor:
            probs = torch.softmax(logits[..., :high].float().cpu() / temperature, -1)
            return torch.multinomial(probs, 1, generator=g)[:, 0]

        rows: list = []
        for start in range(0, num_sequences, batch_size):
            b = min(batch_size, num_sequences - start)
            ids = torch.full((b, S, 1), card, dtype=torch.long)
            ids[:, 0] = self.model.text_card
            for _ in range(length - 1):
                out = self(ids.to(device), audio_logits=False)
                frame = torch.zeros(b, S, dtype=torch.long)
                frame[:, 0] = draw(out.logits[:, -1], text_high)
                h = out.last_hidden_state[:, -1:]
                for k in range(Kd):  # codebook k reads the text and codebooks < k only (causal depformer)
                    frame[:, 1 + k] = draw(self.depth_logits(h, frame[:, :, None].to(device))[:, 0, k], card)
                frame[:, 1 + Kd :] = torch.randint(0, card, (b, S - 1 - Kd), generator=g)
                ids = torch.cat([ids, frame[:, :, None]], -1)
            rows.extend(ids.tolist())
        return rows

    def _layer_prefix(self, layer: int) -> str:
        if not 0 <= layer < self.geometry.num_layers:
            raise IndexError(f"teacher has {self.geometry.num_layers} layers; asked for layer {layer}")
        return f"transformer.layers.{layer}"

    def _rows(self, name: str, lo: int, hi: int, what: str) -> NamedTensor:
        """Rows ``[lo:hi]`` of the fused in_proj, in the student's RoPE convention for q and k."""
        w = self._params[name][lo:hi]
        if what in ("q", "k") and self.interleaved_rope:
            hd = self.geometry.head_dim
            perm = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)]).to(w.device)
            return f"{name}:{what}_rotate_half", w.unflatten(0, (-1, hd))[:, perm].flatten(0, 1)
        return f"{name}[{lo}:{hi}]", w

    def _scaled(self, name: str, layer: int, which: str) -> NamedTensor:
        """``name``'s weight with its output rows times layer ``layer``'s ``which`` scale (exact fold of ``x + s ⊙ f(x)``)."""
        w = self._params[name]
        scale = getattr(self.model.transformer.layers[layer], which)
        if isinstance(scale, nn.Identity):
            return name, w
        return f"{name}*transformer.layers.{layer}.{which}.scale", scale.scale[:, None] * w

    def attention_weights(self, layer: int) -> AttentionWeights:
        p = self._layer_prefix(layer)
        g = self.geometry
        q_dim, kv_dim = g.num_heads * g.head_dim, g.num_kv_heads * g.head_dim
        in_proj = f"{p}.self_attn.in_projs.0.weight"
        tensors = dict(
            q=self._rows(in_proj, 0, q_dim, "q"),
            k=self._rows(in_proj, q_dim, q_dim + kv_dim, "k"),
            v=self._rows(in_proj, q_dim + kv_dim, q_dim + 2 * kv_dim, "v"),
            o=self._scaled(f"{p}.self_attn.out_projs.0.weight", layer, "layer_scale_1"),
        )
        return AttentionWeights(num_heads=g.num_heads, num_kv_heads=g.num_kv_heads, head_dim=g.head_dim, **tensors)

    def _norm(self, name: str) -> NamedTensor:
        return name, self._params[name].reshape(-1)  # alpha [1, 1, D] → [D], same values

    def role_weight(self, role: str) -> NamedTensor:
        if role == "final_norm":
            return self._norm("out_norm.alpha")
        if role == "lm_head":
            return self._named("text_linear.weight")
        parts = role.split(".")
        if parts[0] == "embed" and len(parts) == 2 and parts[1].isdigit():
            s = int(parts[1])
            if s == 0:
                return self._named("text_emb.weight")
            if s <= self.num_codebooks:
                return self._named(f"emb.{s - 1}.weight")
        if parts[0] == "layers" and len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < self.geometry.num_layers:
            i, rest = int(parts[1]), ".".join(parts[2:])
            p = f"transformer.layers.{i}"
            if rest == "input_norm":
                return self._norm(f"{p}.norm1.alpha")
            if rest == "post_norm":
                return self._norm(f"{p}.norm2.alpha")
            if rest == "mlp.down":
                return self._scaled(f"{p}.gating.linear_out.weight", i, "layer_scale_2")
            if rest in ("mlp.gate", "mlp.up"):
                name = f"{p}.gating.linear_in.weight"
                w = self._params[name]
                F_ = w.shape[0] // 2
                return (f"{name}[:{F_}]", w[:F_]) if rest == "mlp.gate" else (f"{name}[{F_}:]", w[F_:])
        raise KeyError(
            f"KyutaiTeacher has no role {role!r}; roles: embed.0..embed.{self.num_codebooks} (text, then audio "
            "codebooks), final_norm, lm_head, layers.{i}.{input_norm,post_norm,mlp.gate,mlp.up,mlp.down}"
        )

    def teacher_tensors(self) -> dict[str, Tensor]:
        """Every name the role maps hand out → its tensor in the student's layout (for ``InitReport.verify``).

        Parameters under their own names (norm ``alpha`` flattened to ``[D]``), plus the derived tensors
        (``…in_projs.0.weight:q_rotate_half``, ``…weight*…layer_scale_1.scale``).
        """
        out = dict(self._params)
        roles = ["final_norm", "lm_head"] + [f"embed.{s}" for s in range(self.num_streams)]
        named: list[NamedTensor] = []
        for i in range(self.geometry.num_layers):
            roles += [f"layers.{i}.{r}" for r in ("input_norm", "post_norm", "mlp.gate", "mlp.up", "mlp.down")]
            a = self.attention_weights(i)
            named += [a.q, a.k, a.v, a.o]
        for role in roles:
            named.append(self.role_weight(role))
        # "[a:b]" names are slices of a parameter already in ``out``; the rest are whole tensors
        out.update((name, t) for name, t in named if "[" not in name)
        return out

    def attention_modules(self) -> list[nn.Module]:
        return [layer.self_attn for layer in self.model.transformer.layers]

    @contextlib.contextmanager
    def capture_attention(self, layers: list[int] | None = None) -> Iterator[AttentionCapture]:
        """Per layer: the attention's input ``[B, T, D]`` and its output after the layer scale ``[B, T, D]``
        (what the residual adds, and what a student mixer initialised from the folded ``o`` produces)."""
        capture = AttentionCapture()
        blocks = self.model.transformer.layers
        chosen = range(len(blocks)) if layers is None else layers
        handles = []
        for i in chosen:
            def pre(module, args, i=i):
                capture.inputs[i] = args[0]

            def post(module, args, output, i=i):
                capture.outputs[i] = output
            handles.append(blocks[i].self_attn.register_forward_pre_hook(pre))
            handles.append(blocks[i].layer_scale_1.register_forward_hook(post))
        try:
            yield capture
        finally:
            for h in handles:
                h.remove()


def kyutai_lm_kwargs(config: dict) -> dict:
    """A kyutai config.json (or an LMModel kwargs dict) → LMModel kwargs; refuses what the adapter cannot load."""
    kwargs = {k: v for k, v in config.items() if k not in NON_LM_KEYS}
    for key, why in (
        ("conditioners", "conditioning adds an input the student has no port for"),
        ("fuser", "conditioning adds an input the student has no port for"),
        ("lora", "fuse the LoRA into the weights first"),
        ("quantize", "load the unquantized (bf16/fp32) checkpoint"),
    ):
        if kwargs.get(key):
            _refuse(f"{key}={kwargs[key]!r}", why)
    kwargs.pop("depformer_causal", None)  # deprecated in moshi's own loader too
    if "demux_second_stream" in kwargs:
        kwargs["demux_second_text_stream"] = kwargs.pop("demux_second_stream")
    return kwargs


def build_lm(lm_kwargs: dict, device: str | torch.device = "cpu") -> nn.Module:
    """``LMModel(**lm_kwargs)`` (fp32), with the argument error made readable."""
    lm_mod = moshi_modules()[0]
    try:
        return lm_mod.LMModel(device=device, dtype=torch.float32, **lm_kwargs)
    except (TypeError, AssertionError) as e:
        raise ValueError(f"kyutai teacher: LMModel rejected teacher.config: {e!r}") from e


LAYOUT_FILE = "distill_token_layout.json"  # beside config.json: moshi's own loader would pass unknown config keys to LMModel
_FUSED = {"in_projs": "in_proj_weight", "out_projs": "out_proj.weight"}


def load_kyutai_lm(path: str | os.PathLike) -> tuple[nn.Module, dict, dict | None, str]:
    """A local kyutai checkpoint directory → ``(LMModel, lm_kwargs, stored token layout or None, weights file)``.

    The directory is what moshi's ``CheckpointInfo`` reads: ``config.json`` (LMModel arguments plus the keys in
    ``NON_LM_KEYS``) and the weights named by its ``moshi_name`` (default ``model.safetensors``), with kyutai
    parameter names (``in_proj_weight``, ``out_proj.weight``, ``text_emb``, ``emb``, …). Safetensors only.
    """
    from safetensors.torch import load_file

    root = require_files(path, ["config.json"])
    raw = json.loads((root / "config.json").read_text())
    weights = root / raw.get("moshi_name", "model.safetensors")
    if weights.suffix not in (".safetensors", ".sft", ".sfts"):
        raise ValueError(f"teacher.path={str(root)!r}: weights {weights.name} are not safetensors; only safetensors load (never pickles)")
    if not weights.is_file():
        raise FileNotFoundError(f"teacher.path={str(root)!r} has no {weights.name} (config.json's moshi_name, default model.safetensors)")
    lm_kwargs = kyutai_lm_kwargs(raw)
    lm = build_lm(lm_kwargs, device="meta")
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
    try:
        lm.load_state_dict(state, strict=True, assign=True)  # moshi's load hook maps in_proj_weight → in_projs.{i}.weight
    except RuntimeError as e:
        raise ValueError(f"kyutai teacher: {weights} does not match config.json's LMModel: {e}") from e
    layout_file = root / LAYOUT_FILE
    layout = json.loads(layout_file.read_text()) if layout_file.is_file() else None
    return lm.eval(), lm_kwargs, layout, str(weights)


def save_kyutai(teacher: KyutaiTeacher, path: str | os.PathLike) -> Path:
    """Write ``teacher`` as a kyutai checkpoint directory (config.json + model.safetensors with kyutai names)."""
    from safetensors.torch import save_file

    if teacher.lm_kwargs is None:
        raise ValueError("save_teacher: this KyutaiTeacher was built from an LMModel object without its lm_kwargs; pass lm_kwargs=")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state, fused = {}, {}
    for name, t in teacher.model.state_dict().items():
        parts = name.split(".")
        if len(parts) >= 3 and parts[-3] in _FUSED and parts[-1] == "weight":  # …self_attn.in_projs.{i}.weight
            fused.setdefault(".".join(parts[:-3] + [_FUSED[parts[-3]]]), []).append((int(parts[-2]), t))
        else:
            state[name] = t
    for name, pieces in fused.items():  # checkpoints hold the per-step weights stacked on dim 0
        state[name] = torch.cat([t for _, t in sorted(pieces, key=lambda p: p[0])])
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({**teacher.lm_kwargs, "moshi_name": "model.safetensors"}, indent=1))
    (path / LAYOUT_FILE).write_text(json.dumps(teacher.token_layout, indent=1))
    return path

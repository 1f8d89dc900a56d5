"""HF Llama-family teachers (Llama, Qwen2, Mistral) over token streams, e.g. flattened codec frames."""

from __future__ import annotations

from torch import Tensor, nn

from students.init import NONE, AttentionWeights, NamedTensor
from teachers.base import TeacherAdapter, TeacherGeometry, TeacherOutput

# model_type → transformers class names; all share Llama's module layout.
LLAMA_FAMILY = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
}


def llama_geometry(config) -> TeacherGeometry:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    # Qwen2 has q/k/v biases without an attention_bias flag.
    attention_bias = bool(getattr(config, "attention_bias", False)) or config.model_type == "qwen2"
    return TeacherGeometry(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        num_kv_heads=config.num_key_value_heads or config.num_attention_heads,
        head_dim=head_dim,
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        rms_norm_eps=config.rms_norm_eps,
        rope_theta=float(rope_theta),
        tie_word_embeddings=bool(config.tie_word_embeddings),
        attention_bias=attention_bias,
        max_position_embeddings=config.max_position_embeddings,
    )


class LlamaTeacher(TeacherAdapter):
    """Adapter for ``{Llama,Qwen2,Mistral}ForCausalLM``: roles map onto HF parameter names."""

    kind = "llama"

    def __init__(self, model: nn.Module, token_layout: dict | None = None, source: str | None = None):
        if model.config.model_type not in LLAMA_FAMILY:
            raise ValueError(f"LlamaTeacher: model_type={model.config.model_type!r}; supported: {sorted(LLAMA_FAMILY)}")
        super().__init__(model, llama_geometry(model.config), token_layout, source)
        self._params = dict(model.named_parameters())

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, output_hidden_states: bool = False) -> TeacherOutput:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states, use_cache=False)
        return TeacherOutput(out.logits, tuple(out.hidden_states) if output_hidden_states else None)

    def _named(self, name: str) -> NamedTensor:
        return (name, self._params[name]) if name in self._params else NONE

    def attention_weights(self, layer: int) -> AttentionWeights:
        if not 0 <= layer < self.geometry.num_layers:
            raise IndexError(f"teacher has {self.geometry.num_layers} layers; asked for layer {layer}")
        p = f"model.layers.{layer}.self_attn"
        g = self.geometry
        return AttentionWeights(
            q=self._named(f"{p}.q_proj.weight"),
            k=self._named(f"{p}.k_proj.weight"),
            v=self._named(f"{p}.v_proj.weight"),
            o=self._named(f"{p}.o_proj.weight"),
            num_heads=g.num_heads,
            num_kv_heads=g.num_kv_heads,
            head_dim=g.head_dim,
            q_bias=self._named(f"{p}.q_proj.bias"),
            k_bias=self._named(f"{p}.k_proj.bias"),
            v_bias=self._named(f"{p}.v_proj.bias"),
            o_bias=self._named(f"{p}.o_proj.bias"),
        )

    def role_weight(self, role: str) -> NamedTensor:
        fixed = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "lm_head": "lm_head.weight"}
        if role in fixed:
            name = fixed[role]
            if role == "lm_head" and self.geometry.tie_word_embeddings:
                name = fixed["embed"]
            return self._named(name)
        parts = role.split(".")
        if parts[0] == "layers" and len(parts) >= 3:
            i, rest = parts[1], ".".join(parts[2:])
            names = {
                "input_norm": "input_layernorm.weight",
                "post_norm": "post_attention_layernorm.weight",
                "mlp.gate": "mlp.gate_proj.weight",
                "mlp.up": "mlp.up_proj.weight",
                "mlp.down": "mlp.down_proj.weight",
            }
            if rest in names:
                return self._named(f"model.layers.{i}.{names[rest]}")
        raise KeyError(f"LlamaTeacher has no role {role!r}")

    def attention_modules(self) -> list[nn.Module]:
        return [layer.self_attn for layer in self.model.model.layers]

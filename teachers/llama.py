"""HF Llama-family teachers (Llama, Qwen2, Mistral) over token streams, e.g. flattened codec frames."""

from __future__ import annotations

from torch import Tensor, nn

from students.init import AttentionWeights, NamedTensor
from teachers.base import TeacherAdapter, TeacherGeometry, TeacherOutput, capture_input, hf_geometry

# model_type → transformers class names; all share Llama's module layout.
LLAMA_FAMILY = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
}


def llama_geometry(config) -> TeacherGeometry:
    return hf_geometry(
        config,
        intermediate_size=config.intermediate_size,
        tie_word_embeddings=bool(config.tie_word_embeddings),
        # Qwen2 has q/k/v biases without an attention_bias flag.
        attention_bias=bool(getattr(config, "attention_bias", False)) or config.model_type == "qwen2",
    )


class LlamaTeacher(TeacherAdapter):
    """Adapter for ``{Llama,Qwen2,Mistral}ForCausalLM``: roles map onto HF parameter names."""

    kind = "llama"

    def __init__(self, model: nn.Module, token_layout: dict | None = None, source: str | None = None):
        if model.config.model_type not in LLAMA_FAMILY:
            raise ValueError(f"LlamaTeacher: model_type={model.config.model_type!r}; supported: {sorted(LLAMA_FAMILY)}")
        super().__init__(model, llama_geometry(model.config), token_layout, source)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, output_hidden_states: bool = False
    ) -> TeacherOutput:
        """input_ids ``[B, T]`` → logits ``[B, T, V]``, hidden states ``[B, T, D]`` (see :class:`TeacherOutput`)."""
        with capture_input(self.model.model.norm) as pre_norm:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
        # HF puts the final norm's output last; the student's convention is the last block's output.
        hidden = (*out.hidden_states[:-1], pre_norm[-1]) if output_hidden_states else None
        return TeacherOutput(out.logits, hidden, out.hidden_states[-1])

    def attention_weights(self, layer: int) -> AttentionWeights:
        return self._attention_by_names(layer, f"model.layers.{layer}.self_attn")

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

"""Tiny configs and teachers shared by the student tests."""

import pytest
import torch

from students import StudentConfig
from teachers.build import build_teacher


def tiny_config(pattern, num_layers=1, num_heads=4, num_kv_heads=2, head_dim=8, mixers=None, **kw) -> StudentConfig:
    """A CPU-sized student; chunk sizes of 16 so 37-token sequences cross chunk boundaries."""
    options = {"mamba2": {"chunk_size": 16}, "gla": {"chunk_size": 16}, "rwkv7": {"chunk_size": 16}}
    for kind, opts in (mixers or {}).items():
        options.setdefault(kind, {}).update(opts)
    return StudentConfig(
        vocab_size=kw.pop("vocab_size", 50),
        hidden_size=kw.pop("hidden_size", 32),
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        intermediate_size=48,
        pattern=pattern,
        mixers=options,
        impl=kw.pop("impl", "naive"),
        **kw,
    )


@torch.no_grad()
def jitter_(module: torch.nn.Module, std: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter, so parameters that start at zero (bonus, key scalings) take part."""
    gen = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * std)
    return module


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


TEACHERS = {
    "mha": dict(model_type="llama", num_attention_heads=4, num_key_value_heads=4),
    "gqa": dict(model_type="llama", num_attention_heads=4, num_key_value_heads=2),
    "qwen2_bias": dict(model_type="qwen2", num_attention_heads=4, num_key_value_heads=2),
    # Llama-3 RoPE scaling: with head_dim 8 the four wavelengths (6.3, 63, 628, 6283) fall in the kept, the
    # interpolated and the divided bands of original_max_position_embeddings = 64.
    "llama3_rope": dict(model_type="llama", num_attention_heads=4, num_key_value_heads=2, rope_parameters=dict(
        rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=64)),
}


def linear_attention_reference(teacher, layer, x, scale):
    """Unnormalised causal linear attention built from the teacher's q/k/v/o: ``o(tril(q k^T)·scale v)``."""
    p = dict(teacher.model.named_parameters())
    g = teacher.geometry
    pre = f"model.layers.{layer}.self_attn"

    def proj(role, heads):
        w, b = p[f"{pre}.{role}_proj.weight"], p.get(f"{pre}.{role}_proj.bias")
        return torch.nn.functional.linear(x, w, b).unflatten(-1, (heads, g.head_dim)).transpose(1, 2)

    rep = g.num_heads // g.num_kv_heads
    q = proj("q", g.num_heads)
    k = proj("k", g.num_kv_heads).repeat_interleave(rep, 1)
    v = proj("v", g.num_kv_heads).repeat_interleave(rep, 1)
    scores = (q @ k.transpose(-1, -2) * scale).tril()
    y = (scores @ v).transpose(1, 2).flatten(-2)
    return torch.nn.functional.linear(y, p[f"{pre}.o_proj.weight"])


@pytest.fixture(scope="session")
def teachers():
    """Random tiny HF teachers: MHA, GQA and a Qwen2 (q/k/v biases) one; 3 layers, head_dim 8."""
    common = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3, max_position_embeddings=256)
    return {name: build_teacher("llama", config={**common, **cfg}, seed=3) for name, cfg in TEACHERS.items()}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny shapes: intra-op threads only add overhead, and oversubscribe CPUs shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

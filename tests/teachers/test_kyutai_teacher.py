"""Kyutai-format teacher (``moshi.models.lm.LMModel``): parity with LMModel.forward, the fused-attention split,
exact student init, local checkpoint round trip, refusals.

Optional: skipped when the ``moshi`` package is not installed. fp32 throughout.
"""

import json
import subprocess
import sys

import pytest
import torch

from students import StudentLM, init_from_teacher, student_config_from_teacher
from tests.students.conftest import rel_err

pytest.importorskip("moshi.models.lm")
from moshi.models.lm_utils import _delay_sequence, _undelay_sequence  # noqa: E402
from moshi.utils.compile import no_compile  # noqa: E402

from teachers import KyutaiTeacher, build_teacher, save_teacher  # noqa: E402

# Same ops, different summation order / fused vs split matmuls: fp32 relative error ≤ 1e-5.
RTOL = 1e-5
N_Q, DEP_Q, CARD, TEXT_CARD, DIM = 4, 2, 16, 20, 32
# Hibiki-shaped: text + 2 generated + 2 input codebooks, acoustic delay 1; GQA (kv_repeat=2) and a layer scale
# so the fused-q/k/v split and the layer-scale fold are both exercised.
TINY = dict(
    delays=[0, 0, 1, 0, 1], n_q=N_Q, dep_q=DEP_Q, card=CARD, text_card=TEXT_CARD, dim=DIM, num_heads=4, num_layers=2,
    hidden_scale=4.125, norm="rms_norm_f32", positional_embedding="rope", gating="silu", context=50, causal=True,
    kv_repeat=2, layer_scale=0.5, depformer_dim=16, depformer_num_heads=2, depformer_num_layers=1,
    depformer_dim_feedforward=32, depformer_pos_emb="none", depformer_multi_linear=True, depformer_weights_per_step=True,
)


@pytest.fixture(autouse=True)
def _eager():
    """moshi torch.compiles its RMSNorm lazily; tiny CPU tests run eager (the adapter itself always does)."""
    with no_compile(), torch.no_grad():
        yield


@torch.no_grad()
def jittered(teacher: KyutaiTeacher, std: float = 0.05, seed: int = 0) -> KyutaiTeacher:
    """Perturb every weight so norms, layer scales and embeddings are not at their (symmetric) init."""
    g = torch.Generator().manual_seed(seed)
    for p in teacher.model.parameters():
        p.add_(torch.randn(p.shape, generator=g) * std)
    return teacher


@pytest.fixture(scope="module")
def teacher():
    return jittered(build_teacher("kyutai", config=TINY, audio_logits=True))


def random_codes(B=2, T=13, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randint(0, TEXT_CARD, (B, 1, T), generator=g), torch.randint(0, CARD, (B, N_Q, T), generator=g)], 1)


def delayed_input(lm, codes):
    """What LMModel.forward feeds forward_text: the initial frame, then the delayed codes, last frame dropped."""
    initial = lm._get_initial_token().expand(codes.shape[0], -1, -1)
    return torch.cat([initial, _delay_sequence(lm.delays, codes, initial)], 2)[:, :, :-1]


def test_geometry_and_layout(teacher):
    g = teacher.geometry
    assert (g.vocab_size, g.hidden_size, g.num_layers, g.num_heads, g.num_kv_heads, g.head_dim) == (TEXT_CARD, DIM, 2, 4, 2, 8)
    assert g.intermediate_size == teacher.model.transformer.layers[0].gating.linear_out.in_features == 88  # 2·int(4.125·32)/3
    assert (g.hidden_act, g.rms_norm_eps, g.rope_theta, g.max_position_embeddings) == ("silu", 1e-8, 10000.0, 50)
    assert g.stream_vocab_sizes == [TEXT_CARD + 1] + [CARD + 1] * N_Q
    layout = teacher.token_layout
    assert (layout["num_codebooks"], layout["num_streams"], layout["delays"], layout["codebook_size"]) == (2, 2, [0, 1], CARD)


def test_forward_matches_lmmodel_forward(teacher):
    """Text logits equal LMModel.forward's (on its own delayed input); audio logits equal its depformer's."""
    lm, codes = teacher.model, random_codes()
    ref = lm(codes)
    ids = delayed_input(lm, codes)
    out = teacher(ids, output_hidden_states=True)
    torch.testing.assert_close(out.logits, ref.text_logits[:, 0], rtol=0, atol=0)  # text delay 0: same positions
    assert len(out.hidden_states) == 3
    torch.testing.assert_close(lm.out_norm(out.hidden_states[-1]), out.last_hidden_state, rtol=0, atol=0)
    T = codes.shape[-1]
    assert out.audio_logits.shape == (2, T - 1, DEP_Q, CARD)
    # LMModel.forward undelays its audio logits: codebook k at frame t came from step t + delay_k
    raw = out.audio_logits.transpose(1, 2)  # [B, dep_q, T-1, card], steps 0..T-2
    undelayed, _ = _undelay_sequence(lm.delays[1 : 1 + DEP_Q], raw)
    for k, d in enumerate(lm.delays[1 : 1 + DEP_Q]):
        n = T - 1 - d
        torch.testing.assert_close(undelayed[:, k, :n], ref.logits[:, k, :n], rtol=0, atol=0)
    # causal: the last frame changes no earlier logits
    changed = ids.clone()
    changed[:, :, -1] = 0
    torch.testing.assert_close(teacher(changed, audio_logits=False).logits[:, :-1], out.logits[:, :-1], rtol=0, atol=0)


def test_qkvo_split_reproduces_the_fused_attention(teacher):
    """q/k/v/o from attention_weights, in the student's rotate-half RoPE, give the layer's attention output."""
    from students.mixers.attention import apply_rope, rope_inv_freq

    ids = delayed_input(teacher.model, random_codes())
    with teacher.capture_attention() as cap:
        teacher(ids)
    g = teacher.geometry
    rep = g.num_heads // g.num_kv_heads
    for i in range(g.num_layers):
        a = teacher.attention_weights(i)
        x = cap.inputs[i]
        B, T, _ = x.shape
        pos = torch.arange(T).expand(B, T)
        freq = rope_inv_freq(g.head_dim, g.rope_theta)
        q = apply_rope((x @ a.q[1].T).unflatten(-1, (g.num_heads, g.head_dim)), pos, freq).transpose(1, 2)
        k = apply_rope((x @ a.k[1].T).unflatten(-1, (g.num_kv_heads, g.head_dim)), pos, freq).transpose(1, 2)
        v = (x @ a.v[1].T).unflatten(-1, (g.num_kv_heads, g.head_dim)).transpose(1, 2)
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(-2)
        assert rel_err(y @ a.o[1].T, cap.outputs[i]) < RTOL  # o carries the folded layer scale
        assert a.q[0].endswith(":q_rotate_half") and "*transformer.layers" in a.o[0]
    # the permutation matters: the fused rows as they are (interleaved pairs) do not give the same output
    w = teacher.model.transformer.layers[0].self_attn.in_projs[0].weight
    assert not torch.equal(w[: DIM], teacher.attention_weights(0).q[1])


@pytest.mark.parametrize("pattern", ["attn", "mamba2"])
def test_student_init_from_teacher(teacher, pattern):
    """Every copied tensor equals the teacher tensor it names; all-attention students compute the teacher's logits."""
    config = student_config_from_teacher(
        teacher.geometry, pattern=pattern, mixers={"mamba2": {"chunk_size": 4}}, token_layout=teacher.token_layout, impl="naive"
    )
    student = StudentLM(config).eval()
    report = init_from_teacher(student, teacher)
    assert report.uncovered(student) == []
    tensors = teacher.teacher_tensors()
    assert report.verify(student, tensors) == len(report.copied)
    ids = delayed_input(teacher.model, random_codes(T=21))
    out, ref = student(ids, output_hidden_states=True), teacher(ids, output_hidden_states=True)
    torch.testing.assert_close(student.embed_ids(ids), ref.hidden_states[0], rtol=1e-6, atol=1e-6)  # summation order
    if pattern == "attn":
        assert rel_err(out.logits, ref.logits) < RTOL
        for s, t in zip(out.hidden_states, ref.hidden_states, strict=True):
            assert rel_err(s, t) < RTOL
    else:  # outside the mixers the block is the teacher's
        x = torch.randn(2, 7, DIM)
        layer, theirs = student.layers[1], teacher.model.transformer.layers[1]
        torch.testing.assert_close(layer.mlp(x), theirs.layer_scale_2(theirs.gating(x)), rtol=1e-6, atol=1e-6)
        # moshi multiplies x by (alpha · rsqrt(var)), the student (x · rsqrt(var)) by weight: 1 ulp apart
        torch.testing.assert_close(layer.post_norm(x), theirs.norm2(x), rtol=1e-6, atol=1e-6)


def test_save_and_load_back(teacher, tmp_path):
    """A kyutai checkpoint directory (config.json + model.safetensors with kyutai names) round-trips."""
    path = save_teacher(teacher, tmp_path / "t")
    from safetensors.torch import load_file

    names = set(load_file(str(path / "model.safetensors")))
    assert "transformer.layers.0.self_attn.in_proj_weight" in names and "text_emb.weight" in names
    assert not any(".in_projs." in n for n in names)
    assert json.loads((path / "config.json").read_text())["n_q"] == N_Q
    again = build_teacher("kyutai", path=str(path), audio_logits=True)
    assert again.geometry == teacher.geometry and again.token_layout == teacher.token_layout
    ids = delayed_input(teacher.model, random_codes(seed=2))
    a, b = again(ids), teacher(ids)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    torch.testing.assert_close(a.audio_logits, b.audio_logits, rtol=0, atol=0)
    (path / "config.json").write_text(json.dumps({**TINY, "moshi_name": "model.pt"}))
    with pytest.raises(ValueError, match="not safetensors"):
        build_teacher("kyutai", path=str(path))


def test_sample_sequences(teacher):
    rows = teacher.sample_sequences(num_sequences=3, length=5, seed=0, batch_size=2)
    ids = torch.tensor(rows)
    assert ids.shape == (3, 1 + N_Q, 5)
    assert (ids[:, 0, 0] == TEXT_CARD).all() and (ids[:, 1:, 0] == CARD).all()  # LMModel's initial frame
    assert int(ids[:, 0, 1:].max()) < TEXT_CARD and int(ids[:, 1:, 1:].max()) < CARD and int(ids.min()) >= 0
    assert rows == teacher.sample_sequences(num_sequences=3, length=5, seed=0, batch_size=2)  # seeded


def test_bad_input_is_refused(teacher):
    ids = delayed_input(teacher.model, random_codes())
    with pytest.raises(ValueError, match=r"input_ids must be \[B, S=5, T\]"):
        teacher(ids[:, :3])
    bad = ids.clone()
    bad[0, 2, 3] = -1  # moshi's zero token
    with pytest.raises(ValueError, match=r"stream 2 holds ids in \[-1, .*must lie in \[0, 17\)"):
        teacher(bad)
    bad[0, 2, 3] = CARD + 1
    with pytest.raises(ValueError, match=r"stream 2 .* \[0, 17\)"):
        teacher(bad)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"positional_embedding": "sin"}, "positional_embedding='sin'"),
        ({"gating": "none", "depformer_gating": "silu"}, "gating='none'"),
        ({"norm": "layer_norm"}, "norm=LayerNorm"),
        ({"gating": "relu"}, "gating activation"),
        ({"bias_proj": True}, "bias_proj=true"),
        ({"norm_emb": True}, "norm_emb=true"),
        ({"cross_attention": True}, "cross_attention=true"),
        ({"quantize": True}, "quantize=True"),
        ({"conditioners": {"x": 1}}, "conditioners="),
        ({"no_such_option": 1}, "LMModel rejected teacher.config"),
    ],
)
def test_unsupported_lmmodel_options_are_refused(override, match):
    with pytest.raises(ValueError, match=match):
        build_teacher("kyutai", config={**TINY, **override})


def test_rope_concat_needs_no_permutation():
    teacher = jittered(build_teacher("kyutai", config={**TINY, "positional_embedding": "rope_concat", "layer_scale": None}))
    a = teacher.attention_weights(0)
    assert a.q[0].endswith(f"in_projs.0.weight[0:{DIM}]") and a.o[0].endswith("out_projs.0.weight")
    student = StudentLM(student_config_from_teacher(teacher.geometry, pattern="attn", impl="naive")).eval()
    init_from_teacher(student, teacher)
    ids = delayed_input(teacher.model, random_codes())
    assert rel_err(student(ids).logits, teacher(ids).logits) < RTOL


def test_teachers_import_moshi_lazily():
    code = "import sys, teachers; assert 'moshi' not in sys.modules, 'moshi imported'"
    subprocess.run([sys.executable, "-c", code], check=True)

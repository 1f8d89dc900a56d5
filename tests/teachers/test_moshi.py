"""Moshi multistream teacher: tiny random build, HF parity, depth decoder, reload, exact init of a multistream student."""

import pytest
import torch

from students import StudentLM, init_from_teacher, load_student, save_student, student_config_from_teacher
from teachers import build_teacher, save_teacher

K = 4  # audio codebooks per stream
MIMI = dict(
    hidden_size=16, num_filters=4, upsample_groups=16, codebook_dim=16, vector_quantization_hidden_dimension=16,
    num_hidden_layers=1, intermediate_size=32, num_attention_heads=2, num_key_value_heads=2, head_dim=8,
    codebook_size=64, num_quantizers=8, num_semantic_quantizers=1, sliding_window=16,
)
TINY = dict(
    vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, ffn_dim=96,
    num_codebooks=K, audio_vocab_size=64, max_position_embeddings=256, sliding_window=256, audio_encoder_config=MIMI,
    depth_decoder_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32, sliding_window=8),
)


@pytest.fixture(scope="module")
def teacher():
    return build_teacher("moshi", config=TINY, audio_logits=True)


def random_frames(teacher, B=2, T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (B, T), generator=g) for v in teacher.geometry.stream_vocab_sizes], 1)


def test_tiny_and_geometry(teacher):
    # depth_decoder_config as a dict is honoured (depth_* kwargs would give a ~700M model)
    assert sum(p.numel() for p in teacher.parameters()) < 200_000
    assert teacher.model.depth_decoder.config.hidden_size == 16
    g = teacher.geometry
    assert (g.vocab_size, g.hidden_size, g.num_layers, g.num_heads, g.num_kv_heads, g.head_dim) == (50, 32, 2, 4, 2, 8)
    assert g.intermediate_size == 48  # ffn_dim / 2: fc1 holds gate and up
    assert g.stream_vocab_sizes == [51] + [65] * (2 * K)
    assert teacher.token_layout["kind"] == "multistream" and teacher.token_layout["delays"] == [0, 1, 1, 1]


def test_forward_matches_hf_and_is_causal(teacher):
    ids = random_frames(teacher)
    out = teacher(ids, output_hidden_states=True)
    ref = teacher.model(input_ids=ids[:, 0], moshi_audio_codes=ids[:, 1 : 1 + K], user_audio_codes=ids[:, 1 + K :])
    torch.testing.assert_close(out.logits, ref.logits, rtol=0, atol=0)
    assert len(out.hidden_states) == 3
    torch.testing.assert_close(teacher.model.decoder.model.norm(out.hidden_states[-1]), out.last_hidden_state, rtol=0, atol=0)
    changed = ids.clone()
    changed[:, :, -1] = 0
    torch.testing.assert_close(teacher(changed, audio_logits=False).logits[:, :-1], out.logits[:, :-1], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"input_ids must be \[B, S=9, T\]"):
        teacher(ids[:, :5])


def test_depth_logits_teacher_forced_and_causal(teacher):
    ids = random_frames(teacher)
    out = teacher(ids)
    assert out.audio_logits.shape == (2, 6, K, 64)
    again = teacher.depth_logits(out.last_hidden_state[:, :-1], ids[:, :, 1:])
    torch.testing.assert_close(again, out.audio_logits, rtol=0, atol=0)
    # codebook k reads the text token and codebooks < k of the predicted frame: changing codebook 1
    # leaves codebooks 0..1 alone and moves 2..K-1
    changed = ids.clone()
    changed[:, 2, 1:] = (changed[:, 2, 1:] + 1) % 64
    moved = teacher.depth_logits(out.last_hidden_state[:, :-1], changed[:, :, 1:])
    torch.testing.assert_close(moved[:, :, :2], out.audio_logits[:, :, :2], rtol=0, atol=0)
    assert not torch.allclose(moved[:, :, 2:], out.audio_logits[:, :, 2:])
    hidden = out.last_hidden_state[:, :-1].clone().requires_grad_(True)
    teacher.depth_logits(hidden, ids[:, :, 1:]).sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0


def test_save_and_load_back(teacher, tmp_path):
    save_teacher(teacher, tmp_path / "t")
    again = build_teacher("moshi", path=str(tmp_path / "t"), audio_logits=True)
    assert again.geometry == teacher.geometry and again.token_layout == teacher.token_layout
    ids = random_frames(teacher, seed=1)
    a, b = again(ids), teacher(ids)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    torch.testing.assert_close(a.audio_logits, b.audio_logits, rtol=0, atol=0)


def test_multistream_student_init_exact_and_streams(teacher, tmp_path):
    config = student_config_from_teacher(
        teacher.geometry, pattern="mamba2", mixers={"mamba2": {"chunk_size": 4}}, token_layout=teacher.token_layout
    )
    student = StudentLM(config)
    report = init_from_teacher(student, teacher)
    assert report.uncovered(student) == []
    # 9 stream embeddings + head + final norm, per layer 2 norms, gate/up (halves of fc1), down, x/B/C/out
    assert report.verify(student, dict(teacher.model.named_parameters())) == 11 + 2 * 9
    ids = random_frames(teacher)
    # everything outside the mixers computes what the teacher computes
    torch.testing.assert_close(student.embed_ids(ids), teacher.embed(ids), rtol=1e-6, atol=1e-6)  # summation order
    x = torch.randn(2, 7, 32)
    layer, theirs = student.layers[1], teacher.model.decoder.model.layers[1]
    torch.testing.assert_close(layer.mlp(x), theirs.mlp(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(layer.post_norm(x), theirs.post_attention_layernorm(x), rtol=0, atol=0)
    # streaming parity: prefill 3 frames, then one frame [B, S] per step (fp32: tolerance of summation order)
    out = student(ids, output_hidden_states=True)
    state = student.allocate_state(2)
    pre = student(ids[:, :, :3], state).logits
    steps = [student.step(ids[:, :, t], state) for t in range(3, 7)]
    torch.testing.assert_close(torch.cat([pre, torch.stack(steps, 1)], 1), out.logits, rtol=1e-5, atol=1e-5)
    # audio KD goes through the frozen depth decoder on the student's temporal states
    audio = teacher.depth_logits(out.last_hidden_state[:, :-1], ids[:, :, 1:])
    assert audio.shape == (2, 6, K, 64)
    save_student(student, tmp_path / "s")
    again = load_student(tmp_path / "s")
    assert again.config.stream_vocab_sizes == teacher.geometry.stream_vocab_sizes
    assert again.config.token_layout == teacher.token_layout
    torch.testing.assert_close(again(ids).logits, out.logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"multistream student: input_ids must be \[B, S=9\]"):
        student.step(ids[:, 0, 0], state)


def test_sample_sequences(teacher):
    rows = teacher.sample_sequences(num_sequences=3, length=5, seed=0, batch_size=2)
    ids = torch.tensor(rows)
    assert ids.shape == (3, 1 + 2 * K, 5)
    assert int(ids[:, 0].max()) < 50 and int(ids[:, 1:].max()) < 64 and int(ids.min()) >= 0
    assert rows == teacher.sample_sequences(num_sequences=3, length=5, seed=0, batch_size=2)  # seeded

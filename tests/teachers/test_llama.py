"""Llama-family teachers (Llama MHA/GQA, Qwen2 with q/k/v biases, Mistral): build, reload, geometry, init map."""

import pytest
import torch

from students import StudentLM, init_from_teacher, load_student, save_student, student_config_from_teacher
from teachers import build_teacher, save_teacher
from teachers.layout import TokenLayout

TINY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, intermediate_size=48, max_position_embeddings=128)
CASES = {
    "llama_mha": dict(model_type="llama", num_attention_heads=4, num_key_value_heads=4, **TINY),
    "llama_gqa": dict(model_type="llama", num_attention_heads=4, num_key_value_heads=2, **TINY),
    "qwen2": dict(model_type="qwen2", num_attention_heads=4, num_key_value_heads=2, **TINY),
    "mistral": dict(model_type="mistral", num_attention_heads=4, num_key_value_heads=1, **TINY),
}
# Llama-Mimi: 4 codebooks per frame after a 32-id text range; 32 + 4·16 = 96 ids.
LAYOUT = TokenLayout(kind="flat_frames", num_codebooks=4, codebook_size=16, offset=32).to_dict()


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return request.param, build_teacher("llama", config=CASES[request.param], token_layout=LAYOUT)


def test_geometry(case):
    name, teacher = case
    cfg, g = CASES[name], teacher.geometry
    assert (g.vocab_size, g.hidden_size, g.num_layers) == (96, 32, 2)
    assert (g.num_heads, g.num_kv_heads, g.head_dim) == (4, cfg["num_key_value_heads"], 8)
    assert g.intermediate_size == 48
    assert g.attention_bias == (name == "qwen2")
    assert g.stream_vocab_sizes == []
    attn = teacher.attention_weights(1)
    assert attn.k[1].shape == (cfg["num_key_value_heads"] * 8, 32)
    assert (attn.q_bias[1] is not None) == (name == "qwen2")
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training  # a fit cannot switch the teacher to train mode


def test_forward_hidden_states_convention(case):
    _, teacher = case
    ids = torch.randint(0, 96, (2, 9))
    out = teacher(ids, output_hidden_states=True)
    assert out.logits.shape == (2, 9, 96)
    assert len(out.hidden_states) == 3  # embedding + 2 layers, the last one before the final norm
    hf = teacher.model.model
    torch.testing.assert_close(hf.norm(out.hidden_states[-1]), out.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(teacher.model.lm_head(out.last_hidden_state), out.logits, rtol=0, atol=0)
    with teacher.capture_attention([1]) as cap:
        teacher(ids)
    assert cap.inputs[1].shape == cap.outputs[1].shape == (2, 9, 32)


def test_save_and_load_back(case, tmp_path):
    _, teacher = case
    save_teacher(teacher, tmp_path / "t")
    again = build_teacher("llama", path=str(tmp_path / "t"))
    assert again.geometry == teacher.geometry
    assert again.token_layout == LAYOUT  # stored in config.json, not given again
    ids = torch.randint(0, 96, (1, 11))
    torch.testing.assert_close(again(ids).logits, teacher(ids).logits, rtol=0, atol=0)


def test_init_copies_exactly_what_it_claims(case, tmp_path):
    name, teacher = case
    config = student_config_from_teacher(teacher.geometry, pattern="mamba2", token_layout=teacher.token_layout)
    student = StudentLM(config)
    report = init_from_teacher(student, teacher)
    assert report.uncovered(student) == []
    # embed, head, final norm + per layer 2 norms, 3 MLP, x/B/C/out (+ 3 biases for Qwen2)
    per_layer = 5 + 4 + (3 if name == "qwen2" else 0)
    assert report.verify(student, dict(teacher.model.named_parameters())) == 3 + 2 * per_layer
    # the layout travels with the student's export
    save_student(student, tmp_path / "s")
    assert load_student(tmp_path / "s").config.token_layout == LAYOUT

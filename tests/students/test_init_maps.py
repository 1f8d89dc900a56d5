"""Init maps from Llama-family teachers (MHA, GQA, Qwen2 with q/k/v biases) onto every mixer kind.

The maps copy exactly the tensors they claim (bit-for-bit), cover every student parameter, and the
documented exact equivalences hold: kept attention == the teacher's layer; GLA and RWKV-7 with the
decay forced to 1 (and the extras off) == unnormalised causal linear attention over q/k/v/o.
"""

import pytest
import torch

from students import InitReport, StudentLM, init_from_teacher, student_config_from_teacher
from students.mixers import MIXERS
from tests.students.conftest import linear_attention_reference, rel_err, tiny_config

# Same ops in the same order up to summation: fp32 rel. err ≤ 1e-5.
RTOL = 1e-5
CHUNK16 = {"mamba2": {"chunk_size": 16}, "gla": {"chunk_size": 16}, "rwkv7": {"chunk_size": 16}}


def student_for(teacher, pattern, attn_layers=None, mixers=None):
    config = student_config_from_teacher(
        teacher.geometry, pattern=pattern, attn_layers=attn_layers, mixers={**CHUNK16, **(mixers or {})}, impl="naive"
    )
    student = StudentLM(config)
    return student, init_from_teacher(student, teacher)


@pytest.mark.parametrize("teacher_name", ["mha", "gqa", "qwen2_bias"])
@pytest.mark.parametrize(
    "pattern, attn_layers", [("gla", None), ("rwkv7", None), ("attn", None), ("mamba2", None), ("rwkv7", [1])]
)
def test_init_copies_exactly_what_it_claims(teachers, teacher_name, pattern, attn_layers):
    teacher = teachers[teacher_name]
    student, report = student_for(teacher, pattern, attn_layers)
    assert report.uncovered(student) == []
    teacher_params = dict(teacher.model.named_parameters())
    assert report.verify(student, teacher_params) == len(report.copied)
    # Independently of the report: the q/k/v/o-keeping mixers hold the teacher's projections.
    for i, layer in enumerate(student.layers):
        if layer.mixer.kind == "mamba2":
            continue
        for role in "qkvo":
            theirs = teacher_params[f"model.layers.{i}.self_attn.{role}_proj.weight"]
            assert torch.equal(getattr(layer.mixer, f"{role}_proj").weight, theirs), (i, role)
        if teacher_name == "qwen2_bias":
            for role in "qkv":
                theirs = teacher_params[f"model.layers.{i}.self_attn.{role}_proj.bias"]
                assert torch.equal(getattr(layer.mixer, f"{role}_proj").bias, theirs), (i, role)


@pytest.mark.parametrize("teacher_name", ["mha", "gqa", "qwen2_bias", "llama3_rope"])
@pytest.mark.parametrize("window", [None, 64])
def test_all_attention_student_is_the_teacher(teachers, teacher_name, window):
    # A window at least as long as the sequence is full attention.
    teacher = teachers[teacher_name]
    student, _ = student_for(teacher, "attn", mixers={"attn": {"window": window}})
    ids = torch.randint(0, 64, (2, 27))
    with torch.no_grad():
        assert rel_err(student(ids).logits, teacher(ids).logits) < RTOL


def test_kept_attention_layer_in_a_hybrid_reproduces_the_teacher_layer(teachers):
    teacher = teachers["gqa"]
    student, _ = student_for(teacher, "gla", attn_layers=[1])
    ids = torch.randint(0, 64, (2, 19))
    with torch.no_grad(), teacher.capture_attention([1]) as cap:
        teacher(ids)
        x = cap.inputs[1]
        assert rel_err(student.layers[1].mixer(x), cap.outputs[1]) < RTOL


@torch.no_grad()
def force_no_decay_(mixer) -> None:
    """Decay exactly 1 (and RWKV-7's in-context learning rate exactly 0): saturated gates, no input dependence."""
    if mixer.kind == "gla":
        mixer.gk_up.weight.zero_()
        mixer.gk_up.bias.fill_(1e4)  # logsigmoid(1e4) == -0.0
    else:
        for lora in (mixer.w_lora, mixer.a_lora):
            lora.up.weight.zero_()
            lora.up.bias.fill_(-1e4)  # sigmoid(-1e4) == 0: log-decay 0, α = 0


@pytest.mark.parametrize("teacher_name", ["mha", "gqa", "qwen2_bias"])
@pytest.mark.parametrize(
    "kind, options",
    [
        ("gla", {"norm": False, "output_gate": False}),
        ("rwkv7", {"norm": False, "output_gate": False, "bonus": False}),
    ],
)
def test_no_decay_mixer_is_linear_attention_over_the_teacher(teachers, teacher_name, kind, options):
    teacher = teachers[teacher_name]
    student, _ = student_for(teacher, kind, mixers={kind: {**CHUNK16[kind], **options}})
    mixer = student.layers[2].mixer
    force_no_decay_(mixer)
    x = torch.randn(2, 37, 32)
    with torch.no_grad():
        assert rel_err(mixer(x), linear_attention_reference(teacher, 2, x, mixer.scale)) < RTOL


@pytest.mark.parametrize("kind", ["gla", "rwkv7", "attn"])
@pytest.mark.parametrize(
    "teacher_name, overrides, field",
    [
        ("gqa", {"num_kv_heads": 4}, "num_kv_heads"),
        ("gqa", {"num_heads": 8, "num_kv_heads": 4, "head_dim": 4}, "num_heads"),
        ("mha", {"num_kv_heads": 4, "head_dim": 4, "num_heads": 8}, "num_heads"),
        ("gqa", {"head_dim": 16}, "head_dim"),
        ("qwen2_bias", {}, "attention_bias"),
    ],
)
def test_geometry_that_cannot_map_names_the_field(teachers, kind, teacher_name, overrides, field):
    teacher = teachers[teacher_name]
    geometry = {"num_heads": 4, "num_kv_heads": 2, "head_dim": 8, **overrides}
    mixer = MIXERS[kind](tiny_config(kind, **geometry), 0)
    with pytest.raises(ValueError, match=field):
        mixer.load_attention(teacher.attention_weights(0), InitReport(), "layers.0.mixer")

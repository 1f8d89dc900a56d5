"""DistillModule: attention transfer is exact for kept attention, and `trainable=mixers` freezes the rest."""

import pytest
import torch

from distill.losses import DistillLoss
from distill.module import DistillModule
from students import StudentLM, init_from_teacher, student_config_from_teacher
from teachers import build_teacher

TINY = dict(
    model_type="llama",
    vocab_size=48,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    initializer_range=0.2,
)


def _module(pattern, trainable="all", **loss):
    teacher = build_teacher("llama", config=TINY)
    cfg = student_config_from_teacher(
        teacher.geometry, pattern=pattern, impl="naive", mixers={"attn": {"window": None, "max_cache_len": 64}}
    )
    student = StudentLM(cfg)
    init_from_teacher(student, teacher)
    return DistillModule(teacher, student, DistillLoss(**loss), torch.optim.SGD, trainable=trainable)


def _batch():
    return {"input_ids": torch.randint(0, 48, (2, 11)), "mask": torch.ones(2, 11, dtype=torch.bool)}


def test_attention_transfer_is_zero_for_kept_attention_and_positive_for_mamba2():
    batch = _batch()
    kept = _module("attn", kl_weight=0.0, attn_weight=1.0)
    t_out, s_out, _, attention, ids, mask = kept._forward(batch)
    assert s_out is None, "a pure attention-transfer stage must not run the full student"
    assert kept.loss(s_out, t_out, ids, mask, None, attention)["attn_mse"].item() < 1e-10
    recurrent = _module("mamba2", kl_weight=0.0, attn_weight=1.0)
    terms = recurrent.loss(*recurrent._forward(batch)[:2], batch["input_ids"], batch["mask"], None, recurrent._forward(batch)[3])
    assert terms["attn_mse"].item() > 1e-3


def test_trainable_mixers_only_updates_mixers():
    module = _module("mamba2", trainable="mixers", kl_weight=1.0, attn_weight=1.0)
    loss = module.training_step(_batch(), 0)
    loss.backward()
    for name, p in module.student.named_parameters():
        if ".mixer." in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name
    with pytest.raises(ValueError, match="trainable"):
        _module("mamba2", trainable="mlp")

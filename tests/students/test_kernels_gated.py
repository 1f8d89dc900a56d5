"""The vector-decay references (kernels/gla, kernels/delta_rule): chunked == recurrent == step.

Forward, final state and every gradient, at odd lengths and across chunk boundaries, with and
without an initial state; fla's ``naive`` references as an external cross-check where installed.
"""

import pytest
import torch
import torch.nn.functional as F

from kernels.delta_rule import chunk_delta_rule, delta_rule_step, naive_chunk_delta_rule, naive_recurrent_delta_rule
from kernels.gla import chunk_gla, gla_step, naive_chunk_gla, naive_recurrent_gla

# fp32 references that differ only in summation order: relative error ~1e-6. Gradients that are
# exactly zero (the decay's at T=1 with no initial state) are compared absolutely.
RTOL = 1e-5


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()


def gla_inputs(B, T, H, K, V, device, decay_scale=1.0):
    q, k = torch.randn(B, T, H, K, device=device), torch.randn(B, T, H, K, device=device)
    v = torch.randn(B, T, H, V, device=device)
    g = F.logsigmoid(torch.randn(B, T, H, K, device=device) + 2) * decay_scale
    return q, k, v, g


def delta_inputs(B, T, H, K, V, device):
    q, k, v, g = gla_inputs(B, T, H, K, V, device)
    kk = F.normalize(torch.randn(B, T, H, K, device=device), dim=-1)
    iclr = torch.rand(B, T, H, K, device=device)
    return q, k, v, g, -kk, kk * iclr  # RWKV-7's a = -κ̂, b = κ̂ ⊙ α


def grads(fn, inputs, h0):
    leaves = [t.clone().requires_grad_() for t in inputs] + [h0.clone().requires_grad_()]
    o, s = fn(*leaves)
    # Fixed random cotangents make every gradient path count.
    torch.manual_seed(1)
    ((o * torch.randn_like(o)).sum() + (s * torch.randn_like(s)).sum()).backward()
    return o, s, [t.grad for t in leaves]


@pytest.mark.parametrize("T, chunk, sub", [(1, 16, 16), (37, 16, 4), (70, 32, 8)])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunk_gla_matches_recurrent(T, chunk, sub, with_state, device):
    inputs = gla_inputs(2, T, 3, 8, 5, device)
    h0 = torch.randn(2, 3, 8, 5, device=device) if with_state else torch.zeros(2, 3, 8, 5, device=device)
    ref = grads(lambda q, k, v, g, h: naive_recurrent_gla(q, k, v, g, 0.4, h), inputs, h0)
    got = grads(lambda q, k, v, g, h: naive_chunk_gla(q, k, v, g, 0.4, h, chunk_size=chunk, sub_chunk=sub), inputs, h0)
    assert rel_err(got[0], ref[0]) < RTOL and rel_err(got[1], ref[1]) < RTOL
    for name, a, b in zip("qkvgh", got[2], ref[2], strict=True):
        assert rel_err(a, b) < RTOL, name


def test_gla_step_matches_recurrent(device):
    q, k, v, g = gla_inputs(2, 9, 3, 8, 5, device)
    ref, ref_state = naive_recurrent_gla(q, k, v, g, 0.4)
    state = torch.full((2, 3, 8, 5), float("nan"), device=device).zero_()
    out = torch.stack([gla_step(q[:, t], k[:, t], v[:, t], g[:, t], state, 0.4, impl="naive") for t in range(9)], 1)
    assert rel_err(out, ref) < RTOL and rel_err(state, ref_state) < RTOL


def test_chunk_gla_stays_finite_under_strong_decay(device):
    # log-decays down to -300 per step: a cumulative exp(-G) would overflow; masked differences do not.
    q, k, v, g = gla_inputs(1, 64, 2, 8, 4, device, decay_scale=100.0)
    o, s = chunk_gla(q, k, v, g, 1.0, chunk_size=64, impl="naive")
    ref, ref_s = naive_recurrent_gla(q, k, v, g, 1.0)
    assert torch.isfinite(o).all() and rel_err(o, ref) < RTOL and rel_err(s, ref_s) < RTOL


def test_gla_bad_shapes_name_the_argument(device):
    q, k, v, g = gla_inputs(1, 4, 2, 8, 4, device)
    with pytest.raises(ValueError, match="g "):
        naive_chunk_gla(q, k, v, g[..., 0])


@pytest.mark.parametrize("T, chunk, sub", [(1, 16, 16), (37, 16, 4), (70, 32, 8)])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunk_delta_rule_matches_recurrent(T, chunk, sub, with_state, device):
    inputs = delta_inputs(2, T, 3, 8, 5, device)
    h0 = torch.randn(2, 3, 8, 5, device=device) if with_state else torch.zeros(2, 3, 8, 5, device=device)
    ref = grads(lambda q, k, v, g, a, b, h: naive_recurrent_delta_rule(q, k, v, g, a, b, 0.4, h), inputs, h0)
    got = grads(
        lambda q, k, v, g, a, b, h: naive_chunk_delta_rule(q, k, v, g, a, b, 0.4, h, chunk_size=chunk, sub_chunk=sub),
        inputs,
        h0,
    )
    assert rel_err(got[0], ref[0]) < RTOL and rel_err(got[1], ref[1]) < RTOL
    for name, a, b in zip(["q", "k", "v", "g", "a", "b", "h"], got[2], ref[2], strict=True):
        assert rel_err(a, b) < RTOL, name


def test_delta_rule_step_matches_recurrent(device):
    q, k, v, g, a, b = delta_inputs(2, 9, 3, 8, 5, device)
    h0 = torch.randn(2, 3, 8, 5, device=device)
    ref, ref_state = naive_recurrent_delta_rule(q, k, v, g, a, b, 0.4, h0)
    state = h0.clone()
    out = torch.stack([delta_rule_step(*(x[:, t] for x in (q, k, v, g, a, b)), state, 0.4, impl="naive") for t in range(9)], 1)
    assert rel_err(out, ref) < RTOL and rel_err(state, ref_state) < RTOL


def test_delta_rule_without_low_rank_is_gla(device):
    q, k, v, g, a, b = delta_inputs(1, 20, 2, 8, 4, device)
    o, s = chunk_delta_rule(q, k, v, g, torch.zeros_like(a), torch.zeros_like(b), 0.5, chunk_size=16, impl="naive")
    ref, ref_s = naive_recurrent_gla(q, k, v, g, 0.5)
    assert rel_err(o, ref) < RTOL and rel_err(s, ref_s) < RTOL


def test_fla_naive_references_agree():
    fla_gla = pytest.importorskip("fla.ops.gla.naive")
    fla_dplr = pytest.importorskip("fla.ops.generalized_delta_rule.dplr.naive")
    K = 8
    q, k, v, g, a, b = delta_inputs(2, 19, 3, K, 5, "cpu")
    h0 = torch.randn(2, 3, K, 5)
    ref, ref_s = fla_gla.naive_recurrent_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    o, s = naive_chunk_gla(q, k, v, g, K**-0.5, h0, chunk_size=16)
    assert rel_err(o, ref) < RTOL and rel_err(s, ref_s) < RTOL
    # fla's dplr reference is head-first [B, H, T, D]; its alpha/beta are our a/b.
    hf = [t.transpose(1, 2) for t in (q, k, v, a, b, g)]
    ref, ref_s = fla_dplr.dplr_recurrence(*hf, initial_state=h0.clone(), output_final_state=True)
    o, s = naive_chunk_delta_rule(q, k, v, g, a, b, K**-0.5, h0, chunk_size=16)
    assert rel_err(o, ref.transpose(1, 2)) < RTOL and rel_err(s, ref_s) < RTOL

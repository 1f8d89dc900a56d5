"""Every launch choice the GPU may make, for every Triton kernel, run in the interpreter inside guard bands.

The other kernel tests run each kernel with the interpreter's own blocks (see ``triton_interpreted()`` in the
config functions and launch wrappers), so bad index math under a GPU tile (BT, BK, BV, BC, or a grid computed
from them) would first show on the GPU. Here each autotuned kernel runs with each of its GPU configs (distinct
block sizes; the interpreter ignores warps and stages) through its real wrapper, grid lambda included
(:func:`only_configs`; one pipeline run checks a config of each kernel in it, :func:`zipped`), and the
non-autotuned launches run with the blocks their wrappers pick on a GPU (:func:`gpu_launch_choices`, or each
decode-step V block the GPU may take). Every input and every buffer the wrappers allocate sits inside guard
bands (:class:`Guards`): a stray read makes outputs non-finite or huge, a stray write changes a band. fp32
throughout (bf16 is not exact under the interpreter, NOTES entry 11); sizes are odd (K, V not powers of two,
T not a multiple of the chunk) so that kernels have several blocks and partial ones, and small, because the
interpreter is slow (batch·heads = 2 for the chunked scans). The SSD backward kernels are covered the same way in
``test_ssd_bwd.py::test_every_gpu_config_in_bounds``.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from _kernel_util import Guards, assert_close, config_id, distinct, gpu_launch_choices, grads, only_configs, zipped

import kernels._dispatch as dispatch
from kernels.causal_conv1d import naive_causal_conv1d, naive_causal_conv1d_update
from kernels.causal_conv1d import triton_conv as conv
from kernels.delta_rule import naive_delta_rule_step, naive_recurrent_delta_rule
from kernels.delta_rule import triton_recurrent as delta
from kernels.delta_rule import triton_recurrent_bwd as delta_bwd
from kernels.delta_rule import triton_step as delta_step
from kernels.gla import naive_gla_step, naive_recurrent_gla
from kernels.gla import triton_chunk as gla_fwd
from kernels.gla import triton_chunk_bwd as gla_bwd
from kernels.gla import triton_step as gla_step
from kernels.ssd import naive_recurrent_ssd, naive_ssd_step
from kernels.ssd import triton_chunk as ssd_fwd
from kernels.ssd import triton_step as ssd_step

# fp32 with IEEE products in every kernel: the chunked and step forms only reorder sums (seen ≤ 2e-6).
FP32_TOL = 1e-5


def _runs(*kernels):
    """pytest params, each a list of (autotuned kernel, GPU config) for one pipeline run: together the runs give
    every kernel each of its distinct GPU configs (:func:`zipped`)."""
    runs = [list(zip([kernel for kernel, _ in kernels], cfgs, strict=True)) for cfgs in zipped(*(distinct(c) for _, c in kernels))]
    return [pytest.param(run, id="_".join(f"{kernel.base_fn.__name__.strip('_')}-{config_id(cfg)}" for kernel, cfg in run)) for run in runs]


def _describe(run) -> str:
    return ", ".join(f"{kernel.base_fn.__name__} {cfg.kwargs}" for kernel, cfg in run)


def _randn(gen, *shape, scale=1.0):
    return torch.randn(*shape, generator=gen) * scale


def _check(guards, what, named):
    """Guard bands intact, then each (name, output, reference) within FP32_TOL (non-finite fails)."""
    guards.check(what)
    for name, out, ref in named:
        assert_close(f"{what}: {name}", out, ref, FP32_TOL)


# SSD forward: K = 72 is 3 blocks of 32 / 2 of 64 for the state walk and 2 K steps of 64 for the output; V = 136
# is 5 blocks of 32, 3 of 64, 2 of 128; T = 131 is 3 chunks of 64 (the last of 3 steps) or 2 of 128 (fp32 never
# takes 128-step chunks on the GPU, see fwd_chunk_size, but bf16 does with the same index math).
SSD_SHAPE = dict(B=1, T=131, H=2, K=72, V=136)


@functools.cache
def _ssd_case():
    gen = torch.Generator().manual_seed(1)
    B, T, H, K, V = SSD_SHAPE.values()
    q, k, v = _randn(gen, B, T, H, K), _randn(gen, B, T, H, K, scale=K**-0.5), _randn(gen, B, T, H, V)
    g = -0.5 * torch.rand(B, T, H, generator=gen)
    h0 = _randn(gen, B, H, K, V)
    return (q, k, v, g, h0), naive_recurrent_ssd(q, k, v, g, 0.3, h0, True)


@pytest.mark.parametrize("splits", [1, 2])  # 2: the split walk, segments of 2 chunks (BT=64) or 1 (BT=128)
@pytest.mark.parametrize("BT", [ssd_fwd.CHUNK, ssd_fwd.LONG_CHUNK])
@pytest.mark.parametrize("run", _runs(
    (ssd_fwd._ssd_chunk_states, ssd_fwd._state_configs(interpreted=False)),
    (ssd_fwd._ssd_chunk_output, ssd_fwd._configs(ssd_fwd._OUTPUT_BV, interpreted=False)),
))
def test_ssd_chunk_forward(run, BT, splits):
    inputs, (o_ref, hT_ref) = _ssd_case()
    guards = Guards()
    q, k, v, g, h0 = map(guards, inputs)
    with guards.allocations(), only_configs(*run):
        o, hT = ssd_fwd.chunk_ssd_fwd(q, k, v, g, 0.3, h0, True, chunk_size=BT, splits=splits)
    _check(guards, f"{_describe(run)}, BT={BT}, splits={splits}", [("o", o, o_ref), ("final", hT, hT_ref)])


# GLA: K = 72 is 2 blocks of 64 for the state walks (one 128-wide tile elsewhere); V = 136 as for SSD;
# T = 69 is 2 chunks of 64, the last with 5 steps (its later sub-chunks are skipped, or written as zero dg rows).
GLA_SHAPE = dict(B=1, T=69, H=2, K=72, V=136)


@functools.cache
def _gla_case():
    gen = torch.Generator().manual_seed(2)
    B, T, H, K, V = GLA_SHAPE.values()
    q, k, v = _randn(gen, B, T, H, K), _randn(gen, B, T, H, K, scale=K**-0.5), _randn(gen, B, T, H, V)
    g = F.logsigmoid(_randn(gen, B, T, H, K) + 2.0)
    h0 = _randn(gen, B, H, K, V)
    do, dhT = _randn(gen, B, T, H, V), _randn(gen, B, H, K, V)
    leaves = [t.clone().requires_grad_() for t in (q, k, v, g, h0)]
    o, hT = naive_recurrent_gla(*leaves[:4], 0.4, leaves[4], True)
    ((o * do).sum() + (hT * dhT).sum()).backward()
    return (q, k, v, g, h0, do, dhT), (o.detach(), hT.detach()), grads(*leaves)


@pytest.mark.parametrize("run", _runs(
    (gla_fwd._gla_chunk_states, gla_fwd._configs(gla_fwd._STATES_TILES, interpreted=False)),
    (gla_fwd._gla_chunk_output, gla_fwd._configs(gla_fwd._OUTPUT_TILES, interpreted=False)),
    (gla_bwd._gla_bwd_dh, gla_fwd._configs(gla_bwd._DH_TILES, interpreted=False)),
    (gla_bwd._gla_bwd_dv, gla_fwd._configs(gla_bwd._DV_TILES, interpreted=False)),
    (gla_bwd._gla_bwd_dqk, gla_fwd._configs(gla_bwd._DQK_TILES, interpreted=False)),
))
def test_gla_chunk_forward_backward(run, monkeypatch):
    inputs, (o_ref, hT_ref), ref = _gla_case()
    guards = Guards()
    q, k, v, g, h0, do, dhT = map(guards, inputs)
    # G, the in-chunk cumulative decay that both modules build with torch, inside guard bands too
    cumsum = gla_fwd.chunk_local_cumsum
    for module in (gla_fwd, gla_bwd):
        monkeypatch.setattr(module, "chunk_local_cumsum", lambda g: guards(cumsum(g)))
    with guards.allocations(), only_configs(*run):
        o, hT = gla_fwd.chunk_gla_fwd(q, k, v, g, 0.4, h0, True)
        got = gla_bwd.chunk_gla_bwd(q, k, v, g, 0.4, h0, do, dhT)
    names = ["o", "final", "dq", "dk", "dv", "dg", "dh0"]
    _check(guards, _describe(run), zip(names, [o, hT, *got], [o_ref, hT_ref, *ref], strict=True))


@pytest.mark.parametrize("run", _runs(
    (gla_fwd._gla_chunk_output, gla_fwd._configs(gla_fwd._OUTPUT_TILES, interpreted=False)),
    (gla_bwd._gla_bwd_dv_scores, gla_fwd._configs(gla_bwd._DVS_TILES, interpreted=False)),
    (gla_bwd._gla_bwd_dA, gla_fwd._configs(gla_bwd._DVS_TILES, interpreted=False)),
    (gla_bwd._gla_bwd_dqk_da, gla_fwd._configs(gla_bwd._DQK_DA_TILES, interpreted=False)),
))
@pytest.mark.parametrize("factored", [False, True])
def test_gla_chunk_backward_from_saved_scores(run, factored, monkeypatch):
    """The forward's saved scores (written by the first V block's program only), dv from them, the chunk's
    do vᵀ computed once and dq/dk/dg reading it, per GPU config."""
    inputs, (o_ref, hT_ref), ref = _gla_case()
    guards = Guards()
    q, k, v, g, h0, do, dhT = map(guards, inputs)
    B, T, H, _ = q.shape
    cumsum = gla_fwd.chunk_local_cumsum
    for module in (gla_fwd, gla_bwd):
        monkeypatch.setattr(module, "chunk_local_cumsum", lambda g: guards(cumsum(g)))
    with guards.allocations(), only_configs(*run):
        scores = torch.empty(B, T, H, gla_fwd.CHUNK)
        o, hT = gla_fwd.chunk_gla_fwd(q, k, v, g, 0.4, h0, True, scores)
        got = gla_bwd.chunk_gla_bwd(q, k, v, g, 0.4, h0, do, dhT, scores, factored)
    names = ["o", "final", "dq", "dk", "dv", "dg", "dh0"]
    _check(guards, _describe(run), zip(names, [o, hT, *got], [o_ref, hT_ref, *ref], strict=True))


# Delta rule: K = 20 is one 32-wide tile; V = 40 is 3 blocks of 16 or 2 of 32.
DELTA_SHAPE = dict(B=2, T=21, H=2, K=20, V=40)


def _delta_inputs(gen, *lead, K, V):
    q, k, v = _randn(gen, *lead, K), _randn(gen, *lead, K, scale=K**-0.5), _randn(gen, *lead, V)
    g = -(torch.rand(*lead, K, generator=gen) * 0.499 + 1e-3)
    kk = F.normalize(_randn(gen, *lead, K), dim=-1)
    alpha = torch.rand(*lead, K, generator=gen) * 0.98 + 0.01
    return q, k, v, g, -kk, kk * alpha


@pytest.mark.parametrize("run", _runs((delta._delta_rule_fused_recurrent_fwd, delta._configs(interpreted=False))))
def test_delta_rule_recurrent(run):
    gen = torch.Generator().manual_seed(3)
    B, T, H, K, V = DELTA_SHAPE.values()
    inputs = (*_delta_inputs(gen, B, T, H, K=K, V=V), _randn(gen, B, H, K, V))
    o_ref, hT_ref = naive_recurrent_delta_rule(*inputs[:6], 0.7, inputs[6], True)
    guards = Guards()
    with guards.allocations(), only_configs(*run):
        o, hT = delta.fused_recurrent_delta_rule_fwd(*map(guards, inputs[:6]), 0.7, guards(inputs[6]), True)
    _check(guards, _describe(run), [("o", o, o_ref), ("final", hT, hT_ref)])


# The backward's V block is the wrapper's choice (_block_v: 16, or 32 once batch·heads fill the GPU), not an autotuned
# meta-parameter, so each is patched in; run i pairs it with forward config i (which writes the checkpoints).
# T = 21 walks two checkpoint segments (C = 16), the second of 5 steps.
@pytest.mark.parametrize("run,BV", [
    pytest.param(run.values[0], bv, id=f"{run.id}BV{bv}")
    for run, bv in zip(_runs(
        (delta._delta_rule_fused_recurrent_fwd, delta._configs(interpreted=False)),
        (delta_bwd._delta_rule_fused_recurrent_bwd, delta_bwd._configs(interpreted=False)),
    ), (16, 32), strict=True)
])
def test_delta_rule_recurrent_backward(run, BV, monkeypatch):
    gen = torch.Generator().manual_seed(7)
    B, T, H, K, V = DELTA_SHAPE.values()
    inputs = (*_delta_inputs(gen, B, T, H, K=K, V=V), _randn(gen, B, H, K, V))
    do, dhT = _randn(gen, B, T, H, V), _randn(gen, B, H, K, V)
    leaves = [t.clone().requires_grad_() for t in inputs]
    o, hT = naive_recurrent_delta_rule(*leaves[:6], 0.7, leaves[6], True)
    ref = [o.detach(), hT.detach(), *torch.autograd.grad((o, hT), leaves, (do, dhT))]
    monkeypatch.setattr(delta_bwd, "_block_v", lambda BH, K, V: BV)
    guards = Guards()
    leaves = [guards(t).requires_grad_() for t in inputs]
    with guards.allocations(), only_configs(*run):
        o, hT = delta.triton_fused_recurrent_delta_rule(*leaves[:6], 0.7, leaves[6], True)
        got = [o.detach(), hT.detach(), *torch.autograd.grad((o, hT), leaves, (guards(do), guards(dhT)))]
    names = ["o", "final", "dq", "dk", "dv", "dg", "da", "db", "dh0"]
    _check(guards, f"{_describe(run)}, backward BV={BV}", zip(names, got, ref, strict=True))


# Decode steps: step_launch cuts V finer on the GPU when batch·heads cannot fill it (BH = 16 → BV = 8 at
# K = 20, V = 40); each (BK, BV, warps) it can return for these K, V over batch·heads 1..4096 is run.
STEP_K, STEP_V = 20, 40


def _gpu_step_launches(K: int, V: int) -> list[tuple[int, int, int]]:
    with gpu_launch_choices(dispatch):
        return sorted({dispatch.step_launch(2**i, K, V, r, r and vk) for i in range(13) for r in (False, True)
                       for vk in (False, True)})


def test_step_launch_cuts_v_on_gpu():
    """The decode-step cases below include V blocks finer than the interpreter's (which takes all of V)."""
    assert dispatch.step_launch(16, STEP_K, STEP_V)[1] == 64
    # V blocks of 8 at K ≤ 64 when those of 16 leave SMs idle (fewer than 128 programs)
    assert {bv for _, bv, _ in _gpu_step_launches(STEP_K, STEP_V)} == {8, 16, 32, 64}
    with gpu_launch_choices(dispatch):
        # K = V = 128 at batch 1 (16 heads): the delta rule's [128, 16] tile on 8 warps (kernels/NOTES.md 67), the
        # SSD and GLA steps' on 4; from batch 64 the delta rule's [128, 32] on 2
        assert dispatch.step_launch(16, 128, 128, rank_one=True) == (128, 16, 8)
        assert dispatch.step_launch(16, 128, 128) == (128, 16, 4)
        assert dispatch.step_launch(1024, 128, 128, rank_one=True) == (128, 32, 2)
        # batch 64: the delta rule's [64, 32] tile on 4 warps at K = 64, the others' [128, 64] on 4 (NOTES 70)
        assert dispatch.step_launch(1024, 64, 64, rank_one=True) == (64, 32, 4)
        assert dispatch.step_launch(1024, 128, 128) == (128, 64, 4)
        # the delta rule on its state held as Sᵀ (K contiguous): V blocks of 16 on 8 warps for small grids, then
        # [128, 64] on 8 warps at K = 128, [64, 32] on 4 at K = 64 (NOTES 73)
        vk = [dispatch.step_launch(16 * B, 128, 128, rank_one=True, state_vk=True) for B in (1, 8, 64)]
        assert vk == [(128, 16, 8), (128, 64, 8), (128, 64, 8)]
        assert [dispatch.step_launch(16 * B, 64, 64, rank_one=True, state_vk=True) for B in (1, 8, 64)] == [
            (64, 16, 8), (64, 16, 8), (64, 32, 4)]


# K = V = 32: every tile fits the state exactly, so the steps launch without bounds masks (EVEN).
_STEP_CASES = [(STEP_K, STEP_V, c) for c in _gpu_step_launches(STEP_K, STEP_V)] + [(32, 32, c) for c in _gpu_step_launches(32, 32)]


@pytest.mark.parametrize("op", ["ssd", "gla", "delta_rule", "delta_rule_vk"])
@pytest.mark.parametrize("K,V,launch", _STEP_CASES, ids=lambda c: f"BK{c[0]}-BV{c[1]}" if isinstance(c, tuple) else str(c))
def test_decode_step(op, K, V, launch, monkeypatch):
    gen = torch.Generator().manual_seed(4)
    B, H = 3, 2
    q, k, v, g, a, b = _delta_inputs(gen, B, H, K=K, V=V)
    state = _randn(gen, B, H, K, V)
    module, kernel, naive, args = {
        "ssd": (ssd_step, ssd_step.triton_ssd_step, naive_ssd_step, (q, k, v, g[..., 0])),
        "gla": (gla_step, gla_step.triton_gla_step, naive_gla_step, (q, k, v, g)),
        # the delta-rule step takes its launch from the GLA step module's (read-out aware) choice
        "delta_rule": (gla_step, delta_step.triton_delta_rule_step, naive_delta_rule_step, (q, k, v, g, a, b)),
        # its state held as Sᵀ ([B, H, V, K]; K ≠ V here)
        "delta_rule_vk": (gla_step, functools.partial(delta_step.triton_delta_rule_step, transposed_state=True),
                          naive_delta_rule_step, (q, k, v, g, a, b)),
    }[op]
    ref_state = state.clone()
    o_ref = naive(*args, ref_state, 0.7)
    monkeypatch.setattr(module, "step_launch", lambda BH, K, V, rank_one=False, state_vk=False: launch)
    guards = Guards()
    vk = op.endswith("_vk")
    s = guards(state.transpose(-1, -2).contiguous() if vk else state)
    with guards.allocations():
        o = kernel(*map(guards, args), s, 0.7)
    _check(guards, f"{op} step {launch}", [("o", o, o_ref), ("state", s.transpose(-1, -2) if vk else s, ref_state)])


# Causal conv1d: C = 260 is 2 blocks of 256 up to 5 of 64; T = 131 is 2 blocks of 128 up to 9 of 16. The
# backward's GPU tiles are 64 × 64 (_blocks), the update's channel block 256. W = 4; bias, initial state, SiLU.
CONV_SHAPE = dict(B=2, T=131, C=260, W=4)


@functools.cache
def _conv_case():
    gen = torch.Generator().manual_seed(5)
    B, T, C, W = CONV_SHAPE.values()
    inputs = (_randn(gen, B, T, C), _randn(gen, C, W, scale=1 / W), _randn(gen, C), _randn(gen, B, C, W - 1))
    dy, dfin = _randn(gen, B, T, C), _randn(gen, B, C, W - 1)
    leaves = [t.clone().requires_grad_() for t in inputs]
    y, fin = naive_causal_conv1d(*leaves, "silu", True)
    ((y * dy).sum() + (fin * dfin).sum()).backward()
    return inputs, (dy, dfin), (y.detach(), fin.detach()), grads(*leaves)


@pytest.mark.parametrize("run", _runs((conv._conv_fwd_tuned, conv._FWD_CONFIGS)))
def test_causal_conv1d_forward(run):
    inputs, _, (y_ref, fin_ref), _ = _conv_case()
    guards = Guards()
    with guards.allocations(), gpu_launch_choices(conv), only_configs(*run):
        y, fin = conv.triton_causal_conv1d(*map(guards, inputs), "silu", True)
    _check(guards, _describe(run), [("y", y, y_ref), ("final", fin, fin_ref)])


def test_causal_conv1d_backward():
    inputs, douts, _, ref = _conv_case()
    guards = Guards()
    x, w, b, s0 = (guards(t).requires_grad_() for t in inputs)
    dy, dfin = map(guards, douts)
    # The forward's config does not matter here (the backward recomputes from the inputs); the first GPU one.
    with guards.allocations(), gpu_launch_choices(conv), only_configs((conv._conv_fwd_tuned, conv._FWD_CONFIGS[0])):
        y, fin = conv.triton_causal_conv1d(x, w, b, s0, "silu", True)
        # the guarded output gradients reach the backward launches as they are (same shape, dtype, layout)
        got = torch.autograd.grad((y, fin), (x, w, b, s0), (dy, dfin))
    _check(guards, "conv backward", zip(["dx", "dweight", "dbias", "dinitial_state"], got, ref, strict=True))


def test_causal_conv1d_update():
    gen = torch.Generator().manual_seed(6)
    B, _, C, W = CONV_SHAPE.values()
    x, w, b, state = _randn(gen, B, C), _randn(gen, C, W, scale=1 / W), _randn(gen, C), _randn(gen, B, C, W - 1)
    ref_state = state.clone()
    y_ref = naive_causal_conv1d_update(x, ref_state, w, b, "silu")
    guards = Guards()
    s = guards(state)
    with guards.allocations(), gpu_launch_choices(conv):
        y = conv.triton_causal_conv1d_update(guards(x), s, guards(w), guards(b), "silu")
    _check(guards, "conv update", [("y", y, y_ref), ("state", s, ref_state)])


# Constexprs an autotune key may leave out: the heads count and fixed sub-block sizes (no change to a program's
# work), flags that only gate the first or last chunk's state loads and stores, and WHOLE (a function of BK,
# which the GLA output kernel's key holds).
_KEY_EXEMPT = {"H", "BC", "BKD", "HAS_H0", "STORE_FINAL", "HAS_DHT", "STORE_DH0", "WHOLE"}


def _autotuned_kernels():
    import importlib
    import pkgutil

    import triton

    import kernels

    for info in pkgutil.walk_packages(kernels.__path__, "kernels."):
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if isinstance(obj, triton.runtime.autotuner.Autotuner) and obj.fn.fn.__module__ == mod.__name__:
                yield f"{info.name}.{name}", obj


@pytest.mark.parametrize("name,kernel", list(_autotuned_kernels()), ids=lambda x: x if isinstance(x, str) else "")
def test_autotune_key_holds_every_path_flag(name, kernel):
    """A constexpr that changes what a kernel does (a fused path, extra stores) must be in its autotune key:
    otherwise the tile timed for one path serves the other, whichever ran first in the process (the fused
    delta-rule solve ran with the split solve's tile, kernels/NOTES.md 46). Tuned meta-parameters are exempt."""
    import inspect

    tuned = {k for c in kernel.configs for k in c.kwargs}
    params = inspect.signature(kernel.fn.fn).parameters.values()  # the Python function (JIT or interpreted)
    constexprs = {p.name for p in params if "constexpr" in str(p.annotation)}
    assert constexprs, f"{name}: no constexpr parameters found (the annotation check is broken)"
    flags = constexprs - tuned - _KEY_EXEMPT
    assert flags <= set(kernel.keys), f"{name}: add {sorted(flags - set(kernel.keys))} to its autotune key"

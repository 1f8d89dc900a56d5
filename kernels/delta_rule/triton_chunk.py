"""Chunked (UT-transform) Triton forward of the generalized delta rule (training, prefill).

Same contract as :func:`kernels.delta_rule.naive.naive_chunk_delta_rule`, whose algorithm it runs. Chunks of
``BT ∈ {16, 32, 64}`` steps, sub-chunks of ``BC = 16`` (at BT = 16 the UT transform is the inverted diagonal
block alone); ``G`` is the inclusive cumulative log-decay from the chunk start, ``G⁻ = G − g`` the exclusive one
(fp32, padded to whole chunks with a zero log-decay so that padded steps leave the state as it was; one pass of
:mod:`kernels.gla.triton_cumsum`). Per chunk with entry state ``S``:

    u = W + Ã S,   W = L A_ak v,   Ã = L (a ⊙ exp(G⁻)),   L = (I − A_ab)⁻¹ (the UT transform)
    o = scale · [(q ⊙ exp(G)) S + Q_b u + Q_k v]
    S ← diag(exp(G_last)) S + b_outᵀ u + k_outᵀ v,   x_out = x ⊙ exp(G_last − G)

The kernels substitute ``u`` before the walk (``M = L A_ak``), so the sequential walk does one product with
the state per chunk and the output needs no ``u``:

    S ← diag(exp(G_last)) S + b_outᵀ (Ã S) + k_effᵀ v,     k_eff = Mᵀ b_out + k_out
    o = q_eff S + P v,   q_eff = scale · (q ⊙ exp(G) + Q_b Ã),   P = scale · (Q_b M + Q_k)

Four launches:

1. ``_delta_rule_chunk_scores``, grid (BT/BC sub-chunks, chunks, batch·head), all independent: the
   sub-chunk's rows of the four strictly / inclusively lower scores ``A_ab``, ``A_ak``, ``Q_b``, ``Q_k``
   (``A_xy[t, i] = Σ_k x_tk y_ik exp(Gx_tk − G_ik)``), written block by block (fp32, ``[B·H, NT, BT, BT]``;
   blocks above the diagonal and rows past T are left unwritten: every reader masks them). Blocks left of
   the diagonal refer both factors to ``G`` at the row before the sub-chunk (``= G⁻`` at its first row, ≥
   every ``G``/``G⁻`` of the sub-chunk, ≤ every earlier ``G``), so both exponents are ≤ 0. The diagonal
   block takes the same products (then masked) while the sub-chunk's decay range ``d`` (max over K of the
   reference minus ``G`` at its last row) is at most ``FACTORED_RANGE`` = 40, its column factors then within
   e^40; past that it takes the pairwise decays as ``[BC, BC, 16]`` tiles (K in steps of 16) with the
   difference masked to ``-inf`` before the exp, ~5× the instructions (kernels/NOTES.md 37). The diagonal
   block of ``A_ab`` is stored inverted, ``(I − A_ab,ii)⁻¹``: its 4 × 4 diagonal blocks by forward
   substitution in registers, then the same product form as in 2.
2. ``_delta_rule_chunk_solve``, grid (chunks, batch·head), all independent: with ``D⁻¹`` the inverted
   diagonal blocks and ``N`` the blocks left of them, ``L = (I − D⁻¹N)⁻¹ D⁻¹ = (I + X²)(I + X) D⁻¹``,
   ``X = D⁻¹N`` (nilpotent: ``X^{BT/BC} = 0``; a block-level forward substitution written as products, so
   no ``A^p`` with large entries appears as it would in a doubling of the whole chunk). Then ``M``, ``P``
   and, in two passes over K blocks, ``b_out``, ``k_eff``, then ``Ã``, ``q_eff`` (``[B·H, NT·BT, K]``).
3. ``_delta_rule_chunk_states``, grid (V block, batch·head): walks the chunks in order, one whole chunk per
   iteration so that the compiler's pipelining loads the next chunk's inputs during the current products
   (``u = Ã S`` reduces over K, so every program holds all of K), and stores the state entering each
   chunk ``h[n]`` (inputs' dtype) and the final state (fp32).
4. ``_delta_rule_chunk_output``, grid (V block, chunk, batch·head), all independent: ``o = q_eff h[n] + P v``.

Precision: everything that feeds the sequential walk (the scores, ``L``, ``Ã``, ``b_out``, ``k_eff``) is
fp32 in registers and in memory, since an error there enters the state and is carried to every later
chunk. With fp32 inputs every product is IEEE fp32 (matches the reference to ~1e-6); otherwise the scores'
small products stay IEEE (fewer registers than tf32 MMA at 16 × 16) and the solve and walk use tf32 on fp32
tiles (at chunk 64 the fused solve's inverse too, NOTES 53). ``walk_dtype`` (forward only; the public op's choice
for 16-bit inputs without a gradient, NOTES 54) stores Ã, b_out and k_eff in the inputs' 16-bit dtype instead.
Only what the output alone reads (``q_eff``, ``P``, ``h``) is stored in the inputs' dtype, whose products then use
tensor cores in that dtype, as the GLA and SSD output kernels do. No factor is ever ``exp``
of more than ``FACTORED_RANGE`` (for ``g ≤ 0``; the factored diagonal blocks' column factors are the only
positive exponents), so strong decays stay finite.

Measured (H200, 2026-12-01, bf16, K = V, median of ``do_bench``; correctness-gated against the fp32 reference,
rel. err 2.4e-3 where fla's ``chunk_rwkv7`` gives 3.0e-3): B=1 T=4096 H=16 K=64 722 µs (BT = 32; 811 µs at
BT = 64), 3.3× the fused-recurrent kernel (2397 µs), fla ``chunk_rwkv7`` 755 µs; B=2 T=4096 H=16 K=128 2151 µs,
1.2× the fused-recurrent (2572 µs); but B=8 T=2048 H=16 K=64 1808 µs, 0.70× the fused-recurrent (1263 µs) and
0.54× fla (974 µs). The scores kernel was the cost once batch·heads fill the GPU (1129 of the 1808 µs: the
``[BC, BC, 16]`` diagonal tiles, whose K reductions are warp shuffles); with factored diagonal blocks it takes
656 µs and the whole forward 1336 µs at B=8 (0.77× fla's 968 µs). The walk is the cost at batch 1 (294 of 722 µs).

Backward: :mod:`kernels.delta_rule.triton_chunk_bwd` (chunked, from what this forward keeps: ``G``, ``L``, ``M``,
``Q_b``, ``Ã``, ``b_out``, ``k_eff``, ``q_eff``, ``P``, ``h``). ``triton_backward=False`` keeps the fallback that
recomputes the forward through :func:`naive_chunk_delta_rule` under autograd (cross-checks).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import bh_bucket, cdiv, next_power_of_2, size_class, tracks_grad, triton_interpreted
from kernels._triton_math import exp_ftz
from kernels.delta_rule._autograd import reference_differentiable
from kernels.delta_rule.naive import _check
from kernels.gla.triton_chunk import _dot, prepare_inputs
from kernels.gla.triton_cumsum import triton_chunk_local_cumsum

__all__ = ["triton_chunk_delta_rule", "chunk_delta_rule_fwd", "CHUNKS", "MAX_K"]

CHUNKS = (16, 32, 64)  # the chunk lengths BT the kernels take; (I + X)(I + X²) covers up to 4 sub-chunks
# those the solve may form the scores for itself (fuse_scores). At 64 its inverse takes tf32 products for 16-bit
# inputs: with IEEE ones it spilled 3-10 KB per thread on sm_90, with tf32 BK = 16 at 8 warps compiles to 255
# registers and no spills (scripts/ptxas_report.py delta_chunk_fwd, kernels/NOTES.md 53)
FUSED_CHUNKS = (16, 32, 64)
SUB_CHUNK = 16
MAX_K = 256  # the state walk holds all of K in one program
# The largest decay range (max over K of G at a sub-chunk's reference row minus G at its last row) for which its
# diagonal block is a product of factors referred to one row: those factors then stay within e^±40 (fp32 reaches
# e^88). RWKV-7's log-decays (≥ −0.61 per step) span at most 9.7 over a sub-chunk of 16.
FACTORED_RANGE = tl.constexpr(40.0)
_MAX_STATE_TILE = 8192  # fp32 state elements (BK · BV) per program of the walk
# A lean walk (16-bit Ã, b̄, k_eff) launches a fixed tile, past the autotuner (kernels/NOTES.md 54): on the H200
# (triton 3.6) its walk at chunk 64 with Ã S on bf16 operands hit illegal memory accesses while the autotuner chose
# among tiles and gave inf at B·H ≥ 128 with a fixed one; Ã S is tf32 at chunk 64 since. The tiles up to K = 128
# are those a sweep picked (NOTES 58, each tile's forward checked against the reference before it was timed; bf16,
# T=2048 H=16 K=V=64): 4 warps and 3 stages (8 warps at 2 stages had cost 10-20 %), BV = 64 below chunk 64 (B=16
# chunk 16: 1034.7 → 899.9 µs; B=8: 610.2 → 508.5) and BV = 16 at chunk 64 (B=1 T=4096: 341.4 → 260.5; B=4: 433.5
# → 397.8). Above K = 128 (BK = 256, not swept) the tile of before: 3 stages of BV = 16 at chunk 64 would take
# 248 KB of shared memory, past the 227 KB a Hopper block may have (tests: every tile is compiled and measured).
LEAN_WALK_TILE = {"num_warps": 4, "num_stages": 3}
LEAN_WALK_TILE_WIDE_K = {"BV": 32, "num_warps": 8, "num_stages": 2}


def lean_walk_tile(batch_heads: int, K: int, BT: int) -> dict:
    """The lean walk's launch: up to K = 128 :data:`LEAN_WALK_TILE` with BV = 16 at chunk 64 and 64 below it;
    above, :data:`LEAN_WALK_TILE_WIDE_K` (``batch_heads`` is kept for a tile that depends on it; none does since
    NOTES 58)."""
    if K > 128:
        return dict(LEAN_WALK_TILE_WIDE_K)
    return {**LEAN_WALK_TILE, "BV": 16 if BT == 64 else 64}


# 4 warps, 3 stages: the state walks' tiles from the lean walk's sweep (NOTES 58), offered to the autotuned walks
# (picked there on the H200, NOTES 62)
WALK_TILES_3_STAGES = (({"BV": 64}, 4), ({"BV": 16}, 4, {"num_stages": 3}), ({"BV": 32}, 4, {"num_stages": 3}),
                       ({"BV": 64}, 4, {"num_stages": 3}))

# Autotune keys hold every constexpr that changes a kernel's work (FUSED, SAVE_LM, SKIP_FACTORED): a key without
# them let the split solve's tile serve the fused one, whichever ran first (kernels/NOTES.md 46).
# GPU configs of each kernel, (meta-parameters, num_warps) each: those autotuned for 16-bit inputs (tensor-core
# products, num_stages = 2), then the one config fp32 inputs take. Few on purpose: every new key autotunes all of
# them. Register counts below are ptxas's for sm_90 (compiled on the CPU) at K = 64 and 128.
_TILES = {
    # BK = 64 at 4 warps spills at K = 128; these take 102-158 registers. Both kernels are latency-bound since
    # NOTES 37 (~27 % of issue peak at 12 and 8 resident warps per SM): the third tile caps registers at 128 for
    # 16 warps per SM, at the price of 72 (scores) and 136 bytes (solve, BT = 32) of spills; the autotuner decides
    "scores": ((({"BK": 32}, 4), ({"BK": 64}, 8), ({"BK": 32}, 4, {"maxnreg": 128})), ({"BK": 32}, 8)),
    # the solve keeps two [BT, BT] fp32 matrices live across its K loops: at BT = 32 these take 184-242 registers,
    # at BT = 64 every 16-bit config tried spills (0.3-1.3 KB). BK = 16 at 8 warps: 128 registers and no spills at
    # BT = 32 (split) and BT = 16 (fused); 232 and none for the fused solve at BT = 32, K = 128 (NOTES 45)
    # Wider K blocks at 4 warps (kernels/NOTES.md 55, 56), at chunk 16 only (_WIDE_SOLVE_MAX_BT): fewer CTA
    # barriers per program (a barrier per layout trip in each K step). On the H200 the autotuner picks BK = 32 at
    # K = 64 (148 registers, 71 barriers; 779 against 898 µs for BK = 16 at B=16 T=2048 H=16) and BK = 64 at K = 128.
    # And 2 warps (NOTES 57), which issue 35-40 % fewer warp instructions per chunk (fewer layout trips across warps)
    # at the same warps per SM: BK = 32 at K = 64 (150 registers, six programs per SM) and BK = 64 at K = 128 (185
    # registers, five), neither spilling. On the H200 the autotuner took BK = 32 at 2 warps at K = 64, chunk 16: the
    # solve went 783 → 499.5 µs at B=16 T=2048 H=16 (NOTES 58)
    "solve": ((({"BK": 16}, 4), ({"BK": 32}, 8), ({"BK": 16}, 4, {"maxnreg": 128}), ({"BK": 16}, 8), ({"BK": 32}, 4),
               ({"BK": 64}, 4), ({"BK": 32}, 2), ({"BK": 64}, 2)),
              ({"BK": 16}, 8)),
    # the walk re-reads Ã, b_out and k_eff once per V block: wider blocks read less, narrower ones give more
    # programs at small batch; BV = 64 only up to K = 128 (see _MAX_STATE_TILE). The 4-warp tiles at 3 stages and
    # BV = 64 at 4 warps: what the lean walk's sweep picked (NOTES 58; a chain of dependent steps per program, bound
    # by each step's latency), offered to the autotuned walk too: on the H200 it took BV 64 at 3 stages at chunks 16
    # and 32 (K = 64), 27-33 % faster than its 2-stage picks (NOTES 62). At K = 128, chunk 64, 3 stages ask for
    # more shared memory than a Hopper block has, and the autotuner skips them.
    "states": ((({"BV": 16}, 4), ({"BV": 32}, 4), ({"BV": 32}, 8), ({"BV": 64}, 8), *WALK_TILES_3_STAGES), ({"BV": 16}, 8)),
    "output": ((({"BK": 64, "BV": 64}, 4), ({"BK": 64, "BV": 128}, 8)), ({"BK": 32, "BV": 32}, 4)),
}
# fp32's IEEE products are FMA loops whose operands live in registers. Pipelined (num_stages = 2) their operands
# went to local memory (32 registers and 1.5-9 KB of stack); at num_stages = 1 the fp32 configs above compile
# without spills, except the solve at BT = 64 (3-6 KB in every config tried): fp32 is the precision path.
_STAGES = {False: 2, True: 1}
# The solve's wide tiles at 4 warps or fewer spill 0.8-2.5 KB at chunk 32 and more at 64 (ptxas): offered below this
# chunk length
_WIDE_SOLVE_MAX_BT = 16
# Under the interpreter: 16-wide K and V blocks, so that the tests' odd K and V (12, 20, 40) span several.
_INTERPRETED = {"scores": {"BK": 16}, "solve": {"BK": 16}, "states": {"BV": 16}, "output": {"BK": 16, "BV": 16}}


class TileTable:
    """The configs of a family of kernels: per kernel name, the 16-bit tiles (autotuned, ``num_stages`` 2; a third
    entry, a dict, sets other :class:`triton.Config` options: ``maxnreg`` or ``num_stages``), the one fp32 tile
    (``num_stages`` 1) and the interpreter's tile; ``walks`` name the kernels that hold a ``[BK, BV]`` fp32 state
    tile, pruned to at most ``_MAX_STATE_TILE`` elements. Shared by the forward and the backward."""

    def __init__(self, tiles: dict, interpreted: dict, walks: tuple[str, ...]):
        self.tiles, self.interpreted, self.walks = tiles, interpreted, walks

    def gpu_configs(self, kernel: str, fp32: bool) -> list[triton.Config]:
        """Each tile is (meta-parameters, num_warps) or (meta-parameters, num_warps, {option: value})."""
        tiles, one = self.tiles[kernel]
        return [triton.Config(dict(meta), num_warps=w, **({"num_stages": _STAGES[fp32]} | (opts[0] if opts else {})))
                for meta, w, *opts in ([one] if fp32 else tiles)]

    def configs(self, kernel: str, interpreted: bool | None = None) -> list[triton.Config]:
        if triton_interpreted() if interpreted is None else interpreted:
            return [triton.Config(self.interpreted[kernel], num_warps=4, num_stages=1)]
        return self.gpu_configs(kernel, False) + self.gpu_configs(kernel, True)

    def by_precision(self, kernel: str):
        """An ``early_config_prune`` keeping the configs of the launch's precision; for a walk only those whose
        ``[BK, BV]`` fp32 tile stays within ``_MAX_STATE_TILE`` elements; for the solve, its 4-warp tiles wider
        than BK = 16 only up to ``_WIDE_SOLVE_MAX_BT``."""

        def prune(configs, named_args, **kwargs):
            if len(configs) == 1:  # the interpreter's, or one a test pinned
                return configs
            wanted = self.gpu_configs(kernel, bool(kwargs["IS_FP32"]))
            keep = [c for c in configs if c in wanted]
            if kernel in self.walks:
                keep = [c for c in keep if kwargs["BK"] * c.kwargs["BV"] <= _MAX_STATE_TILE] or keep[:1]
            if kernel == "solve" and kwargs.get("BT", 0) > _WIDE_SOLVE_MAX_BT:
                keep = [c for c in keep if not (c.num_warps <= 4 and c.kwargs["BK"] > 16)] or keep
            return keep

        return prune


_TABLE = TileTable(_TILES, _INTERPRETED, walks=("states",))
_gpu_configs, _configs, _by_precision = _TABLE.gpu_configs, _TABLE.configs, _TABLE.by_precision


@triton.jit
def _unit_lower_inverse(A, BC: tl.constexpr, TF32: tl.constexpr = False):
    """``(I − A)⁻¹`` of a strictly lower ``[BC, BC]`` fp32 tile (BC = 16, 32 or 64; IEEE products, or tf32 ones with
    ``TF32``). Its 4 × 4
    diagonal blocks ``D⁻¹`` by forward substitution, all at once (``L_r = e_r + Σ_{j<r} A_rj L_j``, rows ``j < r``
    final when row ``r`` is formed: 3 dependent steps rather than BC − 1), then across blocks
    ``… (I + X⁴)(I + X²)(I + X) D⁻¹``, ``X = D⁻¹ N`` with ``N`` the part of ``A`` left of the diagonal blocks
    (``X^{BC/4} = 0``: two factors at BC = 16, three at 32, four at 64)."""
    o = tl.arange(0, BC)
    rows, cols = o[:, None], o[None, :]
    same = rows // 4 == cols // 4
    A_d = tl.where(same, A, 0.0)
    D = tl.where(rows == cols, 1.0, 0.0)
    for r in tl.static_range(1, 4):
        sel = rows % 4 == r
        # row r of every block, each in its own block's columns; D is block diagonal, so one product serves all four
        a_r = tl.sum(tl.where(sel, A_d, 0.0), axis=0)
        D = tl.where(sel & same, D + tl.sum(a_r[:, None] * D, axis=0)[None, :], D)
    X = _dot(D, tl.where(cols // 4 < rows // 4, A, 0.0), not TF32)
    L = D + _dot(X, D, not TF32)
    Xp = X
    for i in tl.static_range(3):
        if BC > (8 << i):  # X^(2^(i+1)) ≠ 0
            Xp = _dot(Xp, Xp, not TF32)
            L = L + _dot(Xp, L, not TF32)
    return L


@triton.jit
def _block_inverse_64(A_ab, p_chunk, A, TF32: tl.constexpr):
    """``(I − A)⁻¹`` of a chunk of 64 from its strictly lower ``[64, 64]`` fp32 scores ``A`` (registers), by 16 × 16
    blocks, as fla's safe inverse: the four diagonal blocks ``D_i`` by :func:`_unit_lower_inverse`, then the six
    below them by block forward substitution, ``L_ij = D_i Σ_{j ≤ k < i} A_ik L_kj`` (16 products of 16 × 16 tiles),
    where the whole-chunk form takes eight ``[64, 64]`` products with ``[64, 64]`` masks. The blocks go through a
    scratch copy at ``A_ab + p_chunk`` (the chunk's ``[64, 64]`` fp32 slot, which a fused solve leaves unused) and
    the result comes back from it as one ``[64, 64]`` tile; a CTA barrier orders each write before its reads."""
    o = tl.arange(0, 64)
    p_sq = A_ab + p_chunk + o[:, None] * 64 + o[None, :]
    tl.store(p_sq, A)  # zero on and above the diagonal: the inverse's upper blocks are read back from these zeros
    tl.debug_barrier()
    c = tl.arange(0, 16)
    p = A_ab + p_chunk + c[:, None] * 64 + c[None, :]  # block (0, 0); block (i, j) at + 16 · (64 i + j)
    D0 = _unit_lower_inverse(tl.load(p), 16, TF32)
    D1 = _unit_lower_inverse(tl.load(p + 1040), 16, TF32)
    D2 = _unit_lower_inverse(tl.load(p + 2080), 16, TF32)
    D3 = _unit_lower_inverse(tl.load(p + 3120), 16, TF32)
    A10, A20, A21 = tl.load(p + 1024), tl.load(p + 2048), tl.load(p + 2064)
    A30, A31, A32 = tl.load(p + 3072), tl.load(p + 3088), tl.load(p + 3104)
    L10 = _dot(D1, _dot(A10, D0, not TF32), not TF32)
    L21 = _dot(D2, _dot(A21, D1, not TF32), not TF32)
    L32 = _dot(D3, _dot(A32, D2, not TF32), not TF32)
    L20 = _dot(D2, _dot(A20, D0, not TF32) + _dot(A21, L10, not TF32), not TF32)
    L31 = _dot(D3, _dot(A31, D1, not TF32) + _dot(A32, L21, not TF32), not TF32)
    L30 = _dot(D3, _dot(A30, D0, not TF32) + _dot(A31, L10, not TF32) + _dot(A32, L20, not TF32), not TF32)
    tl.debug_barrier()  # every block read before the slot is overwritten
    tl.store(p, D0)
    tl.store(p + 1040, D1)
    tl.store(p + 2080, D2)
    tl.store(p + 3120, D3)
    tl.store(p + 1024, L10)
    tl.store(p + 2048, L20)
    tl.store(p + 2064, L21)
    tl.store(p + 3072, L30)
    tl.store(p + 3088, L31)
    tl.store(p + 3104, L32)
    tl.debug_barrier()
    return tl.load(p_sq)


@triton.jit
def _decay_range(G, row_r, has_ref, row_e, K: tl.constexpr, BK: tl.constexpr):
    """max over K of G[row_r] − G[row_e] (G[row_r] read as 0 without ``has_ref``): the largest log-decay a
    sub-chunk spans."""
    d = tl.zeros([], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_Gr = tl.load(G + row_r * K + o_k, mask=m_k & has_ref, other=0.0)
        b_Ge = tl.load(G + row_e * K + o_k, mask=m_k, other=0.0)
        d = tl.maximum(d, tl.max(b_Gr - b_Ge, axis=0))
    return d


@triton.jit
def _referred_scores(
    q, k, a, b, G, row_x, m_i, row_g, row_gx, m_prev, row_r, has_ref, row_y, m_j, row_gy,
    K: tl.constexpr, BK: tl.constexpr, BC: tl.constexpr,
):
    """The four ``[BC, BC]`` score blocks of rows ``row_x`` (``a``, ``q``) against rows ``row_y`` (``b``, ``k``), every
    unmasked entry, as products of factors referred to G at ``row_r``: ``a e^{G⁻ − G_r}``, ``q e^{G − G_r}`` and
    ``b e^{G_r − G}``, ``k e^{G_r − G}``. ``row_g`` / ``row_gy``: the rows in the padded G; ``row_gx``: the rows of
    G⁻ (the step before), read where ``m_prev`` (else 0, a chunk's first step)."""
    acc_ab = tl.zeros([BC, BC], dtype=tl.float32)
    acc_ak = tl.zeros([BC, BC], dtype=tl.float32)
    acc_qb = tl.zeros([BC, BC], dtype=tl.float32)
    acc_qk = tl.zeros([BC, BC], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        m_x = m_i[:, None] & m_k[None, :]
        b_a = tl.load(a + row_x[:, None] * K + o_k[None, :], mask=m_x, other=0.0).to(tl.float32)
        b_q = tl.load(q + row_x[:, None] * K + o_k[None, :], mask=m_x, other=0.0).to(tl.float32)
        b_G = tl.load(G + row_g[:, None] * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_Gx = tl.load(G + row_gx[:, None] * K + o_k[None, :], mask=m_prev[:, None] & m_k[None, :], other=0.0)
        b_Gr = tl.load(G + row_r * K + o_k, mask=m_k & has_ref, other=0.0)
        b_ar = b_a * exp_ftz(b_Gx - b_Gr[None, :])
        b_qr = b_q * exp_ftz(b_G - b_Gr[None, :])
        # b, k and G of the other rows as [BK, BC] (transposed)
        m_y = m_k[:, None] & m_j[None, :]
        b_bj = tl.load(b + row_y[None, :] * K + o_k[:, None], mask=m_y, other=0.0).to(tl.float32)
        b_kj = tl.load(k + row_y[None, :] * K + o_k[:, None], mask=m_y, other=0.0).to(tl.float32)
        b_Gj = tl.load(G + row_gy[None, :] * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        f = exp_ftz(b_Gr[:, None] - b_Gj)
        b_bj *= f
        b_kj *= f
        acc_ab += tl.dot(b_ar, b_bj, input_precision="ieee")
        acc_ak += tl.dot(b_ar, b_kj, input_precision="ieee")
        acc_qb += tl.dot(b_qr, b_bj, input_precision="ieee")
        acc_qk += tl.dot(b_qr, b_kj, input_precision="ieee")
    return acc_ab, acc_ak, acc_qb, acc_qk


@triton.jit
def _pairwise_scores(
    q, k, a, b, G, row_x, m_i, row_g, row_gx, m_prev, K: tl.constexpr, BC: tl.constexpr, BKD: tl.constexpr,
):
    """The diagonal block's four scores (masked: strict for A, inclusive for Q) from pairwise decays, for any decay
    range. Arguments as :func:`_referred_scores`; K in steps of ``BKD``."""
    o_c = tl.arange(0, BC)
    strict = (o_c[:, None] > o_c[None, :])[:, :, None]
    diag = (o_c[:, None] == o_c[None, :])[:, :, None]
    acc_ab = tl.zeros([BC, BC], dtype=tl.float32)
    acc_ak = tl.zeros([BC, BC], dtype=tl.float32)
    acc_qb = tl.zeros([BC, BC], dtype=tl.float32)
    acc_qk = tl.zeros([BC, BC], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BKD)):
        o_k = i_k * BKD + tl.arange(0, BKD)
        m_k = o_k < K
        m_x = m_i[:, None] & m_k[None, :]
        p_x = row_x[:, None] * K + o_k[None, :]
        b_a = tl.load(a + p_x, mask=m_x, other=0.0).to(tl.float32)
        b_q = tl.load(q + p_x, mask=m_x, other=0.0).to(tl.float32)
        b_b = tl.load(b + p_x, mask=m_x, other=0.0).to(tl.float32)
        b_k = tl.load(k + p_x, mask=m_x, other=0.0).to(tl.float32)
        b_G = tl.load(G + row_g[:, None] * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_Gx = tl.load(G + row_gx[:, None] * K + o_k[None, :], mask=m_prev[:, None] & m_k[None, :], other=0.0)
        e_s = exp_ftz(tl.where(strict, b_Gx[:, None, :] - b_G[None, :, :], float("-inf")))
        # e^{G_t − G_i} = e^{G⁻_t − G_i} e^{g_t} below the diagonal, 1 on it: one [BC, BKD] exp instead of a
        # second [BC, BC, BKD] one (e^{g_t} ≤ 1, so still no exp of a positive number)
        e_i = tl.where(diag, 1.0, e_s * exp_ftz(b_G - b_Gx)[:, None, :])
        b_ae = b_a[:, None, :] * e_s
        b_qe = b_q[:, None, :] * e_i
        acc_ab += tl.sum(b_ae * b_b[None, :, :], axis=2)
        acc_ak += tl.sum(b_ae * b_k[None, :, :], axis=2)
        acc_qb += tl.sum(b_qe * b_b[None, :, :], axis=2)
        acc_qk += tl.sum(b_qe * b_k[None, :, :], axis=2)
    return acc_ab, acc_ak, acc_qb, acc_qk


@triton.jit
def _chunk_decay_range(G, row_e, K: tl.constexpr, BK: tl.constexpr):
    """max over K of −G at a chunk's last row ``row_e``: the log-decay the whole chunk spans (G⁻ is 0 at its first
    step). Scores and solve decide from the same loads, so they agree on which chunks the solve forms itself."""
    d = tl.zeros([], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        d = tl.maximum(d, tl.max(-tl.load(G + row_e * K + o_k, mask=o_k < K, other=0.0), axis=0))
    return d


@triton.jit
def _chunk_scores(
    q, k, a, b, G, m_t, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, IS_FP32: tl.constexpr,
):
    """A whole chunk's four scores at once, unmasked: ``a e^{G⁻}`` and ``q e^{G}`` (≤ 1) against ``b e^{−G}`` and
    ``k e^{−G}`` (≤ e^d, d the chunk's decay range), products over K blocks (tf32 for 16-bit inputs, as the
    solve's other products). ``q, k, a, b, G`` point at the chunk's first row (rows H · K apart)."""
    o_t = tl.arange(0, BT)
    acc_ab = tl.zeros([BT, BT], dtype=tl.float32)
    acc_ak = tl.zeros([BT, BT], dtype=tl.float32)
    acc_qb = tl.zeros([BT, BT], dtype=tl.float32)
    acc_qk = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        m_x = m_t[:, None] & m_k[None, :]
        p_x = o_t[:, None] * (H * K) + o_k[None, :]
        b_G = tl.load(G + p_x, mask=m_k[None, :], other=0.0)
        b_Gx = tl.load(G + p_x - H * K, mask=(o_t[:, None] > 0) & m_k[None, :], other=0.0)
        b_ar = tl.load(a + p_x, mask=m_x, other=0.0).to(tl.float32) * exp_ftz(b_Gx)
        b_qr = tl.load(q + p_x, mask=m_x, other=0.0).to(tl.float32) * exp_ftz(b_G)
        f = exp_ftz(-b_G)
        b_br = tl.trans(tl.load(b + p_x, mask=m_x, other=0.0).to(tl.float32) * f)
        b_kr = tl.trans(tl.load(k + p_x, mask=m_x, other=0.0).to(tl.float32) * f)
        acc_ab += _dot(b_ar, b_br, IS_FP32)
        acc_ak += _dot(b_ar, b_kr, IS_FP32)
        acc_qb += _dot(b_qr, b_br, IS_FP32)
        acc_qk += _dot(b_qr, b_kr, IS_FP32)
    return acc_ab, acc_ak, acc_qb, acc_qk


@triton.jit
def _sub_chunk_scores(
    q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, T, NT, i_c, i_n, i_bh,
    H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BKD: tl.constexpr,
):
    """Sub-chunk ``i_c`` of chunk ``i_n``: its rows of the four scores, the diagonal block of ``A_ab`` inverted."""
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    TP = NT * BT
    o_c = tl.arange(0, BC)
    r0 = i_n * BT + i_c * BC  # time of the sub-chunk's first row
    t_i = r0 + o_c
    m_i = t_i < T
    row_x = (i_b * T + t_i) * H + i_h  # rows of this sub-chunk in the [B·T·H, K] views of q, k, a, b
    row_g = (i_b * TP + t_i) * H + i_h  # and in the padded G
    m_prev = i_c * BC + o_c > 0  # G⁻ is G of the step before, or 0 at the chunk's first step
    p_out = (i_bh.to(tl.int64) * NT + i_n) * BT * BT + (i_c * BC + o_c[:, None]) * BT + o_c[None, :]
    # Every factor is referred to G⁻ at this sub-chunk's first row (0 at a chunk's first step). Blocks left of the
    # diagonal: products of [BC, BK] factors that are all ≤ 1, IEEE fp32 for every input dtype (FMA keeps fewer
    # registers live than tf32 MMA at this size).
    row_r = (i_b * TP + r0 - 1) * H + i_h
    has_ref = i_c > 0
    for j_c in range(i_c):
        t_j = i_n * BT + j_c * BC + o_c  # all < r0 < T
        acc_ab, acc_ak, acc_qb, acc_qk = _referred_scores(
            q, k, a, b, G, row_x, m_i, row_g, row_g - H, m_prev, row_r, has_ref, (i_b * T + t_j) * H + i_h, t_j < T,
            (i_b * TP + t_j) * H + i_h, K, BK, BC,
        )
        p_blk = p_out + j_c * BC
        tl.store(A_ab + p_blk, acc_ab)
        tl.store(A_ak + p_blk, acc_ak)
        tl.store(Q_b + p_blk, acc_qb)
        tl.store(Q_k + p_blk, acc_qk)
    # The diagonal block. The same products serve while the sub-chunk's decay range is at most FACTORED_RANGE (the
    # column factors are then ≤ e^FACTORED_RANGE): 4 [BC, BC] products per K block. Past it (log-decays below
    # about −2.5 per step), pairwise decays [BC, BC, BKD], masked before the exp (strict for A, inclusive for Q),
    # K in steps of BKD so that the 3D tiles stay at BC · BC · BKD = 4K elements: ~5× the instructions
    # (their K reductions are warp shuffles; kernels/NOTES.md 37).
    strict = o_c[:, None] > o_c[None, :]
    row_e = (i_b * TP + r0 + BC - 1) * H + i_h  # the sub-chunk's last row (padded rows repeat G at T − 1)
    if _decay_range(G, row_r, has_ref, row_e, K, BK) <= FACTORED_RANGE:
        acc_ab, acc_ak, acc_qb, acc_qk = _referred_scores(
            q, k, a, b, G, row_x, m_i, row_g, row_g - H, m_prev, row_r, has_ref, row_x, m_i, row_g, K, BK, BC,
        )
        incl = o_c[:, None] >= o_c[None, :]
        acc_ab = tl.where(strict, acc_ab, 0.0)
        acc_ak = tl.where(strict, acc_ak, 0.0)
        acc_qb = tl.where(incl, acc_qb, 0.0)
        acc_qk = tl.where(incl, acc_qk, 0.0)
    else:
        acc_ab, acc_ak, acc_qb, acc_qk = _pairwise_scores(q, k, a, b, G, row_x, m_i, row_g, row_g - H, m_prev, K, BC, BKD)
    p_blk = p_out + i_c * BC
    tl.store(A_ab + p_blk, _unit_lower_inverse(acc_ab, BC))
    tl.store(A_ak + p_blk, acc_ak)
    tl.store(Q_b + p_blk, acc_qb)
    tl.store(Q_k + p_blk, acc_qk)


@triton.autotune(
    configs=_configs("scores"), key=["K", "BT", "IS_FP32", "SKIP_FACTORED", "SKIP_GROUP", "SIZE_CLASS"],
    prune_configs_by={"early_config_prune": _by_precision("scores")},
)
@triton.jit(do_not_specialize=["T", "NT", "SIZE_CLASS"])
def _delta_rule_chunk_scores(
    q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, T, NT,
    H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BKD: tl.constexpr,
    IS_FP32: tl.constexpr, SKIP_FACTORED: tl.constexpr = False, SKIP_GROUP: tl.constexpr = 1,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_c, i_g, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    if SKIP_GROUP > 1:
        # Opt-in (chunk_delta_rule_fwd's scores_skip_group, with fuse_scores; kernels/NOTES.md 56, 57): the fused solve
        # forms the scores of every chunk within FACTORED_RANGE itself, so this kernel mostly tests a decay range and
        # leaves. A program tests SKIP_GROUP chunks from one [SKIP_GROUP, BK] load per K block (one load latency for
        # the group; a load per chunk in turn was slower than a program per chunk), then forms the rest in turn.
        o_g = tl.arange(0, SKIP_GROUP)
        n_g = i_g * SKIP_GROUP + o_g
        d_g = tl.zeros([SKIP_GROUP], dtype=tl.float32)
        rows = (i_b * NT * BT + n_g * BT + BT - 1) * H + i_h  # each chunk's last row of G
        for i_k in range(tl.cdiv(K, BK)):
            o_k = i_k * BK + tl.arange(0, BK)
            b_G = tl.load(G + rows[:, None] * K + o_k[None, :], mask=(n_g < NT)[:, None] & (o_k < K)[None, :], other=0.0)
            d_g = tl.maximum(d_g, tl.max(-b_G, axis=1))
        for j in range(SKIP_GROUP):
            i_n = i_g * SKIP_GROUP + j
            if i_n * BT + i_c * BC < T:  # rows past T are padding only: every reader masks them
                if tl.max(tl.where(o_g == j, d_g, 0.0), axis=0) > FACTORED_RANGE:
                    _sub_chunk_scores(q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, T, NT, i_c, i_n, i_bh, H, K, BT, BC, BK, BKD)
    elif i_g * BT + i_c * BC < T:  # rows past T are padding only: every reader masks them
        if SKIP_FACTORED:  # the fused solve forms the scores of every chunk within FACTORED_RANGE itself
            if _chunk_decay_range(G, (i_b * NT * BT + i_g * BT + BT - 1) * H + i_h, K, BK) > FACTORED_RANGE:
                _sub_chunk_scores(q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, T, NT, i_c, i_g, i_bh, H, K, BT, BC, BK, BKD)
        else:
            _sub_chunk_scores(q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, T, NT, i_c, i_g, i_bh, H, K, BT, BC, BK, BKD)


@triton.jit
def _assembled_inverse(A_ab, p_sq, lower, blk_r, blk_c, BT: tl.constexpr, BC: tl.constexpr, IS_FP32: tl.constexpr):
    """L = (I − A_ab)⁻¹ of a chunk from the scores kernel's inverted diagonal blocks D⁻¹ and the blocks N left of
    them: L = (I + X²)(I + X) D⁻¹ with X = D⁻¹N (X² = 0 for two sub-chunks)."""
    b_Di = tl.load(A_ab + p_sq, mask=lower & (blk_r == blk_c), other=0.0)
    b_X = _dot(b_Di, tl.load(A_ab + p_sq, mask=lower & (blk_c < blk_r), other=0.0), IS_FP32)
    b_L = b_Di + _dot(b_X, b_Di, IS_FP32)
    if BT // BC > 2:
        b_L += _dot(_dot(b_X, b_X, IS_FP32), b_L, IS_FP32)
    return b_L


@triton.autotune(
    configs=_configs("solve"), key=["K", "BT", "IS_FP32", "FUSED", "SAVE_LM", "BLOCK_INV", "SIZE_CLASS"],
    prune_configs_by={"early_config_prune": _by_precision("solve")},
)
@triton.jit(do_not_specialize=["T", "NT", "SIZE_CLASS"])
def _delta_rule_chunk_solve(
    q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, Ae, Bo, Ke, Qe, P, Ls, Ms, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, IS_FP32: tl.constexpr,
    SAVE_LM: tl.constexpr = False, FUSED: tl.constexpr = False, BLOCK_INV: tl.constexpr = False,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    TP = NT * BT
    o_t = tl.arange(0, BT)
    t = i_n * BT + o_t
    m_t = t < T
    rows, cols = o_t[:, None], o_t[None, :]
    blk_r, blk_c = rows // BC, cols // BC
    # rows past T were not written (zero there: L, M and P get zero rows, so do Ã and q_eff)
    lower = (cols <= rows) & m_t[:, None]
    p_sq = (i_bh.to(tl.int64) * NT + i_n) * BT * BT + rows * BT + cols
    # The chunk's first row in each [·, K] view, as one 64-bit offset per program; within the chunk int32 offsets
    # (rows H · K apart in q, k, a, b, G; K apart in the outputs), so that no per-element address is 64-bit
    # arithmetic (half the solve's SASS was integer instructions; kernels/NOTES.md 56).
    x0 = ((i_b * T + i_n * BT) * H + i_h) * K
    g0 = ((i_b * TP + i_n * BT) * H + i_h) * K
    q, k, a, b, G = q + x0, k + x0, a + x0, b + x0, G + g0
    o0 = (i_bh.to(tl.int64) * TP + i_n * BT) * K
    Ae, Bo, Ke, Qe = Ae + o0, Bo + o0, Ke + o0, Qe + o0
    p_row = o_t[:, None] * (H * K)
    if FUSED:
        # the chunk's scores formed here when its decay range allows (the scores kernel skipped the chunk),
        # else read as the split path reads them
        if _chunk_decay_range(G + (BT - 1) * H * K, 0, K, BK) <= FACTORED_RANGE:
            b_Aab, b_Aak, b_Qb, b_Qk = _chunk_scores(q, k, a, b, G, m_t, H, K, BT, BK, IS_FP32)
            # at BT = 64 the inverse's eight [64, 64] products in tf32 for 16-bit inputs (IEEE spills; the split path's
            # assembly across sub-chunks is tf32 too)
            if BLOCK_INV:  # by 16 × 16 blocks through the chunk's unused A_ab slot (chunk_delta_rule_fwd's block_inverse)
                b_L = _block_inverse_64(A_ab, (i_bh.to(tl.int64) * NT + i_n) * BT * BT, tl.where(cols < rows, b_Aab, 0.0),
                                        TF32=not IS_FP32)
            else:
                b_L = _unit_lower_inverse(tl.where(cols < rows, b_Aab, 0.0), BT, TF32=BT == 64 and not IS_FP32)
            b_Aak = tl.where(lower & (cols < rows), b_Aak, 0.0)
            b_Qb = tl.where(lower, b_Qb, 0.0)
            b_Qk = tl.where(lower, b_Qk, 0.0)
            if SAVE_LM:  # the backward reads Q_b
                tl.store(Q_b + p_sq, b_Qb)
        else:
            b_L = _assembled_inverse(A_ab, p_sq, lower, blk_r, blk_c, BT, BC, IS_FP32)
            b_Aak = tl.load(A_ak + p_sq, mask=lower & (cols < rows), other=0.0)
            b_Qb = tl.load(Q_b + p_sq, mask=lower, other=0.0)
            b_Qk = tl.load(Q_k + p_sq, mask=lower, other=0.0)
    else:
        b_L = _assembled_inverse(A_ab, p_sq, lower, blk_r, blk_c, BT, BC, IS_FP32)
        b_Aak = tl.load(A_ak + p_sq, mask=lower & (cols < rows), other=0.0)
    b_M = _dot(b_L, b_Aak, IS_FP32)
    if SAVE_LM:  # for the backward (buffers of their own: the autotuner reruns this kernel on the same scores)
        tl.store(Ls + p_sq, b_L)
        tl.store(Ms + p_sq, b_M)
    p_Gl = G + (BT - 1) * H * K  # the chunk's last row of G
    # Two passes over K, so that only two [BT, BT] matrices stay live across a loop: (L, M), then (L, Q_b L).
    b_Mt = tl.trans(b_M)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        p_x = p_row + o_k[None, :]
        b_b = tl.load(b + p_x, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b_k = tl.load(k + p_x, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b_G = tl.load(G + p_x, mask=m_k[None, :], other=0.0)
        b_Gl = tl.load(p_Gl + o_k, mask=m_k, other=0.0)
        decay = exp_ftz(b_Gl[None, :] - b_G)
        b_bo = b_b * decay
        p_o = o_t[:, None] * K + o_k[None, :]
        tl.store(Bo + p_o, b_bo.to(Bo.dtype.element_ty), mask=m_k[None, :])
        tl.store(Ke + p_o, (_dot(b_Mt, b_bo, IS_FP32) + b_k * decay).to(Ke.dtype.element_ty), mask=m_k[None, :])
    if not FUSED:  # loaded only now: two [BT, BT] matrices fewer live across the loop above
        b_Qb = tl.load(Q_b + p_sq, mask=lower, other=0.0)
        b_Qk = tl.load(Q_k + p_sq, mask=lower, other=0.0)
    b_Pv = _dot(b_Qb, b_M, IS_FP32) + b_Qk
    tl.store(P + p_sq, (b_Pv * scale).to(P.dtype.element_ty))
    b_QL = _dot(b_Qb, b_L, IS_FP32)  # q_eff = scale · (q ⊙ exp(G) + Q_b Ã), Ã = L (a ⊙ exp(G⁻))
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        p_x = p_row + o_k[None, :]
        b_a = tl.load(a + p_x, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b_q = tl.load(q + p_x, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b_G = tl.load(G + p_x, mask=m_k[None, :], other=0.0)
        b_Gx = tl.load(G + p_x - H * K, mask=(o_t[:, None] > 0) & m_k[None, :], other=0.0)
        b_ae = b_a * exp_ftz(b_Gx)
        p_o = o_t[:, None] * K + o_k[None, :]
        tl.store(Ae + p_o, _dot(b_L, b_ae, IS_FP32).to(Ae.dtype.element_ty), mask=m_k[None, :])
        b_qe = (b_q * exp_ftz(b_G) + _dot(b_QL, b_ae, IS_FP32)) * scale
        tl.store(Qe + p_o, b_qe.to(Qe.dtype.element_ty), mask=m_k[None, :])


@triton.autotune(
    configs=_configs("states"), key=["K", "V", "BK", "BT", "IS_FP32", "BH_BUCKET"],
    prune_configs_by={"early_config_prune": _by_precision("states")},
)
@triton.jit(do_not_specialize=["T", "NT"])
def _delta_rule_chunk_states(
    v, G, Ae, Bo, Ke, h, h0, hT, T, NT, BH_BUCKET,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_FP32: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    TP = NT * BT
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_kv = o_k[:, None] * V + o_v[None, :]
    b_s = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        b_s += tl.load(h0 + i_bh.to(tl.int64) * K * V + p_kv, mask=m_kv, other=0.0)
    o_t = tl.arange(0, BT)
    # One chunk per iteration and no inner loop: the compiler's pipelining (num_stages) then loads chunk n + 1's
    # Ã, b_out, k_eff and v while chunk n's products run; only the products with the state are sequential.
    for i_n in range(NT):
        tl.store(h + (i_bh.to(tl.int64) * NT + i_n) * K * V + p_kv, b_s.to(h.dtype.element_ty), mask=m_kv)
        t = i_n * BT + o_t
        row_o = i_bh.to(tl.int64) * TP + t
        # Ã as [BT, BK], b_out and k_eff as [BK, BT] (transposed); rows past T hold zeros
        b_At = tl.load(Ae + row_o[:, None] * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_bo = tl.load(Bo + row_o[None, :] * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_ke = tl.load(Ke + row_o[None, :] * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_v = tl.load(v + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=(t[:, None] < T) & m_v[None, :], other=0.0)
        b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        # Ã S and k_effᵀ v in the operands' dtype: fp32 (tf32 or IEEE products), or the 16-bit one of a lean walk
        # (chunk_delta_rule_fwd's walk_dtype), whose b_outᵀ u stays tf32 as the state's own update
        if BT == 64:  # Ã S in tf32 even for a lean walk: bf16 there gave inf / illegal addresses on the H200 (NOTES 54)
            b_u = _dot(b_At.to(tl.float32), b_s, IS_FP32)
        else:
            b_u = _dot(b_At, b_s.to(b_At.dtype), IS_FP32)  # u − W = Ã S
        b_s = b_s * exp_ftz(b_Gl)[:, None] + _dot(b_bo.to(tl.float32), b_u, IS_FP32) + _dot(b_ke, b_v.to(b_ke.dtype), IS_FP32)
    if STORE_FINAL:
        tl.store(hT + i_bh.to(tl.int64) * K * V + p_kv, b_s, mask=m_kv)


@triton.autotune(
    configs=_configs("output"), key=["K", "V", "BT", "IS_FP32", "SIZE_CLASS"],
    prune_configs_by={"early_config_prune": _by_precision("output")},
)
@triton.jit(do_not_specialize=["T", "NT", "SIZE_CLASS"])
def _delta_rule_chunk_output(
    v, Qe, P, h, o, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    o_t = tl.arange(0, BT)
    t = i_n * BT + o_t
    m_t = t < T
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    row_o = i_bh.to(tl.int64) * NT * BT + t
    p_h = h + (i_bh.to(tl.int64) * NT + i_n) * K * V
    acc = tl.zeros([BT, BV], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_qe = tl.load(Qe + row_o[:, None] * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_h = tl.load(p_h + o_k[:, None] * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        acc += _dot(b_qe, b_h, IS_FP32)
    b_P = tl.load(P + (i_bh.to(tl.int64) * NT + i_n) * BT * BT + o_t[:, None] * BT + o_t[None, :])
    p_v = ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :]
    b_v = tl.load(v + p_v, mask=m_t[:, None] & m_v[None, :], other=0.0)
    acc += _dot(b_P, b_v, IS_FP32)
    tl.store(o + p_v, acc.to(o.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])


def chunk_delta_rule_fwd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int = 32,
    saved: dict | None = None,
    fuse_scores: bool = False,
    walk_dtype: torch.dtype | None = None,
    block_inverse: bool = False,
    scores_skip_group: int = 8,
) -> tuple[Tensor, Tensor | None]:
    """The forward launches alone (no autograd). Arguments and returns as :func:`triton_chunk_delta_rule`.

    ``scores_skip_group`` (with ``fuse_scores``; a power of 2 up to 64, 8 by default): each program of the scores
    kernel tests that many chunks' decay ranges from one ``[group, K]`` load, instead of one chunk per program. On
    the H200 (NOTES 58; bf16, T=2048 H=16 K=V=64, chunk 16, lean walk) 8 took the scores kernel from 47.4 to 25.9 µs
    and the forward from 1056.6 to 1039.8 µs at B=16 (620.2 → 614.0 at B=8).

    ``block_inverse`` (chunk 64 with ``fuse_scores`` only; off by default, not yet timed on a GPU): the fused solve
    inverts ``I − A_ab`` by 16 × 16 blocks (:func:`_block_inverse_64`) instead of eight ``[64, 64]`` products.

    ``walk_dtype``: the dtype of what the state walk reads per chunk (Ã, b̄, k_eff): fp32 (``None``, the default) or,
    forward only, the inputs' 16-bit dtype (a *lean walk*, as fla's walk reads its w, kg and bg), with k_effᵀ v on
    16-bit operands and Ã S on 16-bit ones below chunk 64 (tf32 at 64, NOTES 54); the state itself is fp32 either
    way. ``chunk_delta_rule`` takes it for every forward-only 16-bit call: on the H200, bf16, T=2048 H=16 K=V=64
    (NOTES 54) B·H = 256 1762 → 1519 µs (chunk 16), 128 933 → 848 (16), 64 527 → 460 (64), at an unchanged rel.
    err (2.5e-3). On a GPU the lean walk launches :func:`lean_walk_tile`'s tile, past the autotuner.

    ``saved``: a dict that receives what the chunked backward (:mod:`kernels.delta_rule.triton_chunk_bwd`) reads:
    ``G``, ``L``, ``M``, ``Q_b``, ``Ae`` (Ã), ``Bo`` (b̄), ``Ke``, ``Qe``, ``P``, ``h`` and the chunk length ``BT``.
    """
    _check(q, k, v, g, a, b, "chunk_delta_rule")
    B, T, H, K = q.shape
    V = v.shape[-1]
    if K > MAX_K:
        raise ValueError(f"chunk_delta_rule: K={K} > {MAX_K}; the state walk holds all of K in one program")
    if chunk_size not in CHUNKS:
        raise ValueError(f"chunk_delta_rule: chunk_size={chunk_size}; the Triton kernels take one of {CHUNKS}")
    if scores_skip_group not in (1, 2, 4, 8, 16, 32, 64):
        raise ValueError(f"chunk_delta_rule: scores_skip_group={scores_skip_group}; take a power of 2 from 1 to 64")
    if initial_state is not None and initial_state.shape != (B, H, K, V):
        raise ValueError(f"chunk_delta_rule: initial_state {tuple(initial_state.shape)} must be [B, H, K, V] = {(B, H, K, V)}")
    out_dtype = v.dtype
    q, k, v = prepare_inputs(q, k, v)
    a, b = a.contiguous(), b.contiguous()
    BT, BH = chunk_size, B * H
    NT = cdiv(T, BT)
    TP = NT * BT
    dev, f32 = q.device, torch.float32
    IS_FP32 = q.dtype == torch.float32
    BK = max(16, next_power_of_2(K))
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    hT = torch.empty(B, H, K, V, device=dev, dtype=f32) if output_final_state else None
    o = torch.empty(B, T, H, V, device=dev, dtype=out_dtype)
    G = triton_chunk_local_cumsum(g, BT)
    A_ab, A_ak, Q_b, Q_k = torch.empty(4, BH, NT, BT, BT, device=dev, dtype=f32).unbind(0)
    walk_dtype = f32 if walk_dtype is None else walk_dtype
    if walk_dtype not in (f32, q.dtype):
        raise ValueError(f"chunk_delta_rule: walk_dtype={walk_dtype}; take torch.float32 or the inputs' {q.dtype}")
    if saved is not None and walk_dtype != f32:
        raise ValueError(f"chunk_delta_rule: walk_dtype={walk_dtype} with saved: the backward reads Ã, b̄ and k_eff in fp32")
    Ae, Bo, Ke = torch.empty(3, BH, TP, K, device=dev, dtype=walk_dtype).unbind(0)
    Qe = torch.empty(BH, TP, K, device=dev, dtype=q.dtype)
    P = torch.empty(BH, NT, BT, BT, device=dev, dtype=q.dtype)
    h = torch.empty(BH, NT, K, V, device=dev, dtype=q.dtype)
    Ls, Ms = torch.empty(2, BH, NT, BT, BT, device=dev, dtype=f32).unbind(0) if saved is not None else (A_ab, A_ak)
    if NT:
        group = scores_skip_group if fuse_scores else 1
        _delta_rule_chunk_scores[(BT // SUB_CHUNK, cdiv(NT, group), BH)](
            q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, T, NT, SIZE_CLASS=size_class(NT * BH), H=H, K=K, BT=BT, BC=SUB_CHUNK,
            BKD=16, IS_FP32=IS_FP32,
            SKIP_FACTORED=fuse_scores, SKIP_GROUP=group,
        )
        _delta_rule_chunk_solve[(NT, BH)](
            q, k, a, b, G, A_ab, A_ak, Q_b, Q_k, Ae, Bo, Ke, Qe, P, Ls, Ms, float(scale), T, NT,
            SIZE_CLASS=size_class(NT * BH), H=H, K=K, BT=BT, BC=SUB_CHUNK, IS_FP32=IS_FP32, SAVE_LM=saved is not None,
            FUSED=fuse_scores, BLOCK_INV=block_inverse and fuse_scores and BT == 64,
        )
    walk, tile = _delta_rule_chunk_states, {}
    if walk_dtype != f32 and not triton_interpreted():  # the lean walk's one tile, autotuner bypassed (LEAN_WALK_TILE)
        walk, tile = _delta_rule_chunk_states.fn, lean_walk_tile(BH, K, BT)
    walk[lambda meta: (cdiv(V, meta["BV"]), BH)](
        v, G, Ae, Bo, Ke, h, h0, hT, T, NT, bh_bucket(BH),
        H=H, K=K, V=V, BT=BT, BK=BK, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_FP32=IS_FP32, **tile,
    )
    if NT:
        _delta_rule_chunk_output[lambda meta: (cdiv(V, meta["BV"]), NT, BH)](
            v, Qe, P, h, o, T, NT, SIZE_CLASS=size_class(NT * BH), H=H, K=K, V=V, BT=BT, IS_FP32=IS_FP32,
        )
    if saved is not None:
        saved.update(G=G, L=Ls, M=Ms, Q_b=Q_b, Ae=Ae, Bo=Bo, Ke=Ke, Qe=Qe, P=P, h=h, BT=BT)
    return o, hT


def triton_chunk_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int = 32,
    triton_backward: bool = True,
    fuse_scores: bool = False,
    walk_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Whole-sequence generalized delta rule: chunked Triton forward and backward.

    Args:
        q, k, a, b: ``[B, T, H, K]`` (K ≤ 256). v: ``[B, T, H, V]``. g: ``[B, T, H, K]`` log-decay (≤ 0).
        scale: multiplies q. initial_state: ``[B, H, K, V]`` or None (zeros).
        output_final_state: return the final state (else None).
        chunk_size: 16, 32 or 64, the chunk of both passes.
        triton_backward: gradients from the chunked Triton backward (:mod:`kernels.delta_rule.triton_chunk_bwd`,
            default); False recomputes them through the reference :func:`naive_chunk_delta_rule` under autograd
            (slower, for cross-checks).
        fuse_scores: the solve forms the scores of each chunk whose decay range is within ``FACTORED_RANGE``
            itself, as whole-chunk products, and the scores kernel skips those chunks (one fewer write and read of
            four ``[BT, BT]`` fp32 matrices per chunk; NOTES 38). At ``chunk_size`` 64 its inverse is tf32 for
            16-bit inputs (NOTES 53).
        walk_dtype: the dtype of the walk's per-chunk operands, as :func:`chunk_delta_rule_fwd`'s: the inputs'
            16-bit dtype (a lean walk) only when no gradient is tracked.
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    if triton_backward:
        tensors = (q, k, v, g, a, b, initial_state)
        if not tracks_grad(*tensors):
            return chunk_delta_rule_fwd(
                q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size, fuse_scores=fuse_scores,
                walk_dtype=walk_dtype,
            )
        if walk_dtype not in (None, torch.float32):
            raise ValueError(f"chunk_delta_rule: walk_dtype={walk_dtype} with a gradient tracked; the backward reads "
                             "Ã, b̄ and k_eff in fp32: leave walk_dtype None")
        from kernels.delta_rule.triton_chunk_bwd import ChunkDeltaRuleFunction

        return ChunkDeltaRuleFunction.apply(
            q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size, fuse_scores
        )
    return reference_differentiable(
        chunk_delta_rule_fwd, "chunk_delta_rule", q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size, True
    )

"""Registers and spills of Triton kernels for sm_90, compiled on any machine (no GPU needed).

Compiles each GPU config of the chosen kernels through Triton's CUDA backend to PTX, runs the ``ptxas`` Triton
ships with ``-v`` and prints registers per thread and spill-store bytes. A config at 255 registers with spills
trades occupancy and local-memory traffic for its tile size; this is how kernels/NOTES.md's register counts are
taken. Kernel groups: ``delta_chunk_fwd`` (the chunked delta-rule forward: scores, solve, ``solve+fused`` (the
solve forming the scores itself, ``fuse_scores``), ``solve+fused+blockinv`` (at chunk 64, its inverse by 16 × 16
blocks), states, output) and
``delta_chunk_bwd`` (its backward: dstates, bwd_v, bwd_k); ``ssd_chunk_fwd`` and ``gla_chunk_fwd`` (state walk and
output, each autotuner's own configs).

``--sass`` also disassembles each cubin with the ``nvdisasm`` Triton ships and prints, per loop (a backward
branch in the SASS), its instructions and their most frequent opcodes: static counts, so a loop's share of the
run time is its count times its trip count. Warp shuffles (SHFL) there are reductions across lanes, FFMA loops
IEEE fp32 products, HMMA / HGMMA tensor-core products, MUFU the exps. kernels/NOTES.md 37 found the delta rule's
diagonal blocks this way.

    python scripts/ptxas_report.py delta_chunk_bwd [--stages 2] [--sass] [--out FILE] [--dump DIR]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = GPUTarget("cuda", 90, 32)
_BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
PTXAS, NVDISASM = os.path.join(_BIN, "ptxas"), os.path.join(_BIN, "nvdisasm")


def ptxas_usage(kernel, types: dict, constexprs: dict, num_warps: int, num_stages: int) -> tuple[int, int]:
    """(registers per thread, spill-store bytes) of ``kernel`` (a ``triton.jit`` function) for sm_90a."""
    return compile_sm90(kernel, types, constexprs, num_warps, num_stages)[:2]


# Shared memory a block may take on the H100 / H200 (227 KB, opted into past the default 48 KB, as Triton does): a
# launch asking for more fails with OutOfResources, which the autotuner survives and a fixed tile does not.
SM90_MAX_SHARED = 227 * 1024


def shared_bytes_sm90(kernel, types: dict, constexprs: dict, num_warps: int, num_stages: int) -> int:
    """Bytes of shared memory a launch of ``kernel`` asks for on sm_90a (Triton's compile, no GPU needed)."""
    return _triton_compile(kernel, types, constexprs, num_warps, num_stages, None).metadata.shared


def _triton_compile(kernel, types: dict, constexprs: dict, num_warps: int, num_stages: int, maxnreg: int | None):
    fn = kernel
    while not isinstance(fn, JITFunction):  # an autotuner (or heuristics) wraps the jit function
        fn = fn.fn
    # constexpr parameters left out take their defaults (else they would compile as pointer arguments)
    constexprs = {p.name: p.default for p in fn.params if p.is_constexpr and p.has_default} | constexprs
    signature = {n: "constexpr" if n in constexprs else types.get(n, "*fp32") for n in fn.arg_names}
    # Every pointer 16-byte aligned, as a launch marks a torch tensor's (Triton's "D" specialization): without it
    # the compiler may not vectorize any load or store, and the counts are not those of the kernel that runs.
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(fn.arg_names) if signature[n].startswith("*")}
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs), target=TARGET,
                          options={"num_warps": num_warps, "num_stages": num_stages, "maxnreg": maxnreg})


def compile_sm90(kernel, types: dict, constexprs: dict, num_warps: int, num_stages: int,
                 maxnreg: int | None = None) -> tuple[int, int, bytes]:
    """(registers per thread, spill-store bytes, cubin) of ``kernel`` for sm_90a, through ptxas ``-v``;
    ``maxnreg`` caps the registers per thread as a config's ``maxnreg`` does."""
    compiled = _triton_compile(kernel, types, constexprs, num_warps, num_stages, maxnreg)
    with tempfile.TemporaryDirectory() as d:
        ptx = Path(d, "k.ptx")
        ptx.write_text(compiled.asm["ptx"])
        log = subprocess.run([PTXAS, "-arch=sm_90a", "-v", str(ptx), "-o", str(Path(d, "k.cubin"))],
                             capture_output=True, text=True, check=True).stderr
        cubin = Path(d, "k.cubin").read_bytes()
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = re.search(r"(\d+) bytes spill stores", log)
    return regs, int(spills.group(1)) if spills else 0, cubin


_LAST_SASS: list[str] = []  # the latest disassembly, for --dump


def disassemble(cubin: bytes) -> str:
    """The SASS of a cubin, by the ``nvdisasm`` Triton ships."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "k.cubin")
        path.write_bytes(cubin)
        text = subprocess.run([NVDISASM, "-c", str(path)], capture_output=True, text=True, check=True).stdout
    _LAST_SASS[:] = [text]
    return text


def dump_name(index: int, row: str) -> str:
    """A file name for a table row's SASS: its number, kernel, K, tile and warps (``003_delta_masked_K128_BK128_BV32_w2``)."""
    cells = [c.strip() for c in row.split("|")[1:]]
    tile = "_".join(f"{k}{v}" for k, v in re.findall(r"'(\w+)': (\d+)", cells[3]))
    return re.sub(r"[^\w.-]+", "_", f"{index:03d}_{cells[0]}_K{cells[1]}_{tile}_w{cells[4]}") + ".sass"


_INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")
_BRANCH = re.compile(r"\bBRA\b.*`\((\.L_x_\d+)\)")
_LABEL = re.compile(r"^(\.L_x_\d+):")


def sass_loops(sass: str) -> tuple[collections.Counter, list[tuple[int, int, collections.Counter]]]:
    """Opcode counts of the whole kernel, and per loop (a branch back to an earlier label) its first and last
    instruction's offset and its opcode counts, nested loops included in their enclosing loop's."""
    instrs, labels, branches = [], {}, []
    pending = []  # labels waiting for the next instruction's offset
    for line in sass.splitlines():
        label = _LABEL.match(line.strip())
        if label:
            pending.append(label.group(1))
            continue
        m = _INSTR.search(line)
        if not m:
            continue
        offset, opcode = int(m.group(1), 16), m.group(2)
        for name in pending:
            labels[name] = offset
        pending = []
        instrs.append((offset, opcode))
        target = _BRANCH.search(line)
        if target:
            branches.append((offset, target.group(1)))
    loops = []
    for offset, name in branches:
        start = labels.get(name)
        if start is not None and start < offset:  # (a branch to itself is the trap after EXIT)
            loops.append((start, offset, collections.Counter(op for o, op in instrs if start <= o <= offset)))
    return collections.Counter(op for _, op in instrs), sorted(loops)


# whole-kernel counts printed beside the total: CTA barriers and warp shuffles (the latency of reductions and layout
# trips across warps), tensor-core products (HGMMA: Hopper's wgmma, HMMA: mma.sync), shared-memory stores, selects,
# and the special-function unit's exps and reciprocals (MUFU)
LATENCY_OPS = ("BAR", "SHFL", "HGMMA", "HMMA", "STS", "FSEL", "MUFU")


def load_rounds(sass: str) -> list[int]:
    """Global loads (LDG) between consecutive CTA barriers, for each stretch that has any, in program order. In a
    kernel without loops each stretch is one round trip to memory that the next cannot start before (a barrier
    waits for the shared-memory conversion of what the stretch loaded): kernels/NOTES.md 71 counts the decode step's
    vector loads so."""
    rounds, n = [], 0
    for line in sass.splitlines():
        m = _INSTR.search(line)
        if not m:
            continue
        if m.group(2) == "BAR":
            rounds, n = rounds + [n] if n else rounds, 0
        elif m.group(2) == "LDG":
            n += 1
    return rounds + [n] if n else rounds


def fmt_sass(sass: str, top: int = 6) -> str:
    """The whole kernel's instruction count with its :data:`LATENCY_OPS`, then one entry per loop: offsets,
    instruction count and the most frequent opcodes; a kernel without loops, its :func:`load_rounds`."""
    total, loops = sass_loops(sass)
    parts = [f"{sum(total.values())} instructions (" + ", ".join(f"{op} {total[op]}" for op in LATENCY_OPS) + ")"]
    for start, end, ops in loops:
        common = ", ".join(f"{op} {n}" for op, n in ops.most_common(top))
        parts.append(f"loop {start:#x}-{end:#x}: {sum(ops.values())} ({common})")
    if not loops and (rounds := load_rounds(sass)):
        parts.append("loads between barriers " + "·".join(map(str, rounds)))
    return "; ".join(parts)


def _row(name, kernel, types, consts, K, BT, tile, stages, sass) -> str:
    meta, warps, *opts = tile
    opts = opts[0] if opts else {}
    regs, spills, cubin = compile_sm90(kernel, types, consts | meta, warps, opts.get("num_stages", stages), opts.get("maxnreg"))
    tile_text = " ".join([f"{meta}", *(f"{k}={v}" for k, v in opts.items())])
    row = f"| {name} | {K} | {BT} | {tile_text} | {warps} | {regs} | {spills} |"
    return row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")


def delta_chunk_bwd(stages: int, sass: bool = False, only: str = "", quick: bool = False):
    from kernels.delta_rule import triton_chunk_bwd as m

    bf = "*bf16"
    scalars = {"scale": "fp32", "T": "i32", "NT": "i32", "BH_BUCKET": "i32", "SIZE_CLASS": "i32"}
    for K in (64,) if quick else (64, 128):
        for BT in (32,) if quick else (16, 32, 64):
            common = dict(H=16, K=K, V=K, BT=BT, IS_FP32=False)
            cases = [
                ("dstates", m._delta_rule_chunk_dstates, {"do": bf, "Qe": bf},
                 dict(common, BK=triton.next_power_of_2(K), HAS_DHT=True, STORE_DH0=True)),
                ("bwd_v", m._delta_rule_chunk_bwd_v, {n: bf for n in ("v", "do", "P", "h", "dv")}, common),
                ("bwd_k", m._delta_rule_chunk_bwd_k, {n: bf for n in ("q", "k", "v", "a", "b", "do", "h", "dq", "dk", "da", "db")},
                 dict(common, BC=16)),
            ]
            for name, kernel, types, consts in cases:
                tiles = m._TILES[name.split("+")[0]][0][:1 if quick else None]
                for tile in tiles if not only or name == only else ():
                    yield _row(name, kernel, types | scalars, consts, K, BT, tile, stages, sass)


def delta_chunk_fwd(stages: int, sass: bool = False, only: str = "", quick: bool = False):
    from kernels.delta_rule import triton_chunk as m

    bf = "*bf16"
    scalars = {"scale": "fp32", "T": "i32", "NT": "i32", "BH_BUCKET": "i32", "SIZE_CLASS": "i32"}
    for K in (64,) if quick else (64, 128):
        for BT in (32,) if quick else (16, 32, 64):
            common = dict(H=16, K=K, BT=BT, IS_FP32=False)
            cases = [
                ("scores", m._delta_rule_chunk_scores, {n: bf for n in ("q", "k", "a", "b")}, dict(common, BC=16, BKD=16)),
                ("solve", m._delta_rule_chunk_solve, {n: bf for n in ("q", "k", "a", "b", "Qe", "P")}, dict(common, BC=16)),
                ("solve+fused", m._delta_rule_chunk_solve, {n: bf for n in ("q", "k", "a", "b", "Qe", "P")},
                 dict(common, BC=16, FUSED=True, SAVE_LM=True)),
                *([("solve+fused+blockinv", m._delta_rule_chunk_solve, {n: bf for n in ("q", "k", "a", "b", "Qe", "P")},
                    dict(common, BC=16, FUSED=True, SAVE_LM=False, BLOCK_INV=True))] if BT == 64 else []),
                ("states", m._delta_rule_chunk_states, {"v": bf, "h": bf},
                 dict(common, V=K, BK=triton.next_power_of_2(K), HAS_H0=True, STORE_FINAL=True)),
                ("output", m._delta_rule_chunk_output, {n: bf for n in ("v", "Qe", "P", "h", "o")}, dict(common, V=K)),
            ]
            for name, kernel, types, consts in cases:
                tiles = m._TILES[name.split("+")[0]][0][:1 if quick else None]
                for tile in tiles if not only or name == only else ():
                    yield _row(name, kernel, types | scalars, consts, K, BT, tile, stages, sass)


def _autotuned_rows(cases, Ks, stages, sass, only, quick):
    """Rows of kernels whose tiles are their autotuner's own GPU configs (``configs``; this process compiles for
    the GPU, so those are not the interpreter's), each config's warps and stages as the GPU would take them."""
    for K in Ks[:1] if quick else Ks:
        for name, kernel, types, consts in cases(K):
            if only and name != only:
                continue
            prune = kernel.early_config_prune  # the configs a launch with these constants tunes over
            configs = prune(kernel.configs, {}, **consts) if prune else kernel.configs
            for cfg in configs[:1] if quick else configs:
                regs, spills, cubin = compile_sm90(kernel, types, consts | cfg.kwargs, cfg.num_warps, cfg.num_stages,
                                                   cfg.maxnreg)
                row = f"| {name} | {K} | {consts.get('BT')} | {cfg.kwargs} stages={cfg.num_stages} | {cfg.num_warps} | {regs} | {spills} |"
                yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")


def ssd_chunk_fwd(stages: int, sass: bool = False, only: str = "", quick: bool = False):
    """The SSD (Mamba2) chunked forward: the state walk and the output, each whole and split into segments (kernels/
    NOTES.md 50), then the split's carry over the segments (``stages`` is each autotuned config's own here)."""
    from kernels.ssd import triton_chunk as m

    bf, sc = "*bf16", {"scale": "fp32", "T": "i32", "NT": "i32", "NS": "i32", "LS": "i32", "SIZE_CLASS": "i32"}

    def cases(K):  # both chunk lengths the SSD forward takes
        out = []
        for BT in (m.CHUNK, m.LONG_CHUNK):
            common = dict(H=16, K=K, V=K, BT=BT, IS_FP32=False)
            states, output = {"k": bf, "v": bf, "h": bf} | sc, {n: bf for n in ("q", "k", "v", "h", "o")} | sc
            for split in (False, True):
                tag = " split" if split else ""
                out += [(f"states{tag}", m._ssd_chunk_states, states, dict(common, HAS_H0=True, STORE_FINAL=not split, SPLIT=split)),
                        (f"output{tag}", m._ssd_chunk_output, output, dict(common, BK=m._block_k(K), SPLIT=split))]
        return out

    yield from _autotuned_rows(cases, (64, 128), stages, sass, only, quick)
    if only and only != "carry":
        return
    block = m._CARRY_BLOCK
    for K in (64,) if quick else (64, 128):  # not autotuned: the wrapper's blocks, Triton's default 4 warps
        regs, spills, cubin = compile_sm90(m._ssd_segment_carry, {"NS": "i32"}, dict(K=K, V=K, BK=block, BV=block, STORE_FINAL=True),
                                           4, stages)
        row = f"| carry | {K} | - | {{'BK': {block}, 'BV': {block}}} | 4 | {regs} | {spills} |"
        yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")


def gla_chunk_fwd(stages: int, sass: bool = False, only: str = "", quick: bool = False):
    """The GLA chunked forward: the state walk and the output (``stages`` is each config's own here)."""
    from kernels.gla import triton_chunk as m

    bf, sc = "*bf16", {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}

    def cases(K):
        common = dict(H=16, K=K, V=K, BT=m.CHUNK, IS_FP32=False)
        return [("states", m._gla_chunk_states, {"k": bf, "v": bf, "h": bf} | sc,
                 dict(common, BK=min(64, max(16, triton.next_power_of_2(K))), HAS_H0=True, STORE_FINAL=True)),
                ("output", m._gla_chunk_output, {n: bf for n in ("q", "k", "v", "h", "o")} | sc,
                 dict(common, BC=m.SUB_CHUNK, BK=max(16, triton.next_power_of_2(K)), WHOLE=K <= m.WHOLE_MAX_K))]

    yield from _autotuned_rows(cases, (64, 128), stages, sass, only, quick)


def gla_chunk_bwd(stages: int, sass: bool = False, only: str = "", quick: bool = False):
    """The GLA chunked backward's dq/dk kernel, from the forward's saved scores (``dqk_da``, the default: K in
    blocks of at most 64; its factored-diagonal launch and its ``pairwise`` one, for sub-chunks past
    ``FACTORED_RANGE``) and without them (``dqk``, one K block, one launch)."""
    from kernels.gla import triton_chunk as m
    from kernels.gla import triton_chunk_bwd as b

    bf, sc = "*bf16", {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}

    def cases(K):
        common = dict(H=16, K=K, V=K, BT=m.CHUNK, BC=m.SUB_CHUNK, IS_FP32=False)
        types = {n: bf for n in ("q", "k", "v", "h", "do", "dh", "dq", "dk")} | sc
        return [(f"dqk_da{'' if f else ' pairwise'}", b._gla_bwd_dqk_da, types, dict(common, BK=min(64, K), HAS_DA=True, FACTORED=f))
                for f in (True, False)] + [("dqk", b._gla_bwd_dqk, types, dict(common, BK=K, HAS_DA=False, FACTORED=None))]

    yield from _autotuned_rows(cases, (64, 128), stages, sass, only, quick)


# the launch variants joined into fla's structure (kernels/NOTES.md 71), compiled beside the delta rule's others
FLA_LIKE = "flat-grid+rank-one-first+store-last+out-of-place+no-barrier"


def decode_step(stages: int, sass: bool = False, only: str = "", quick: bool = False):
    """The decode step's one kernel (``gated_step_kernel``) as the SSD, GLA and delta-rule steps launch it: each
    launch ``step_launch`` picks on a GPU for H = 16 at batch 1 and batch 64, and at K ≤ 64 the [K, 16] tile on 4
    warps that batch 1 took before V blocks of 8 (kernels/NOTES.md 66), each also in the kernel's launch variants
    (``STEP_VARIANTS``: no barrier, state stored last, out of place, bounds masks kept), and the delta rule's step on
    its state held as Sᵀ at the launches ``step_launch(state_vk=True)`` picks. ``--sass`` shows each one's barriers and
    shuffles: the reductions over K that cross warps."""
    import kernels._dispatch as dispatch
    from kernels.gla.triton_step import STEP_VARIANTS, even_tile, gated_step_kernel, read_out_kernel, read_out_launch, step_order

    bf = "*bf16"
    types = {n: bf for n in ("q", "k", "v", "a", "b", "o")} | {"g": "*fp32", "s": "*fp32", "scale": "fp32",
                                                               "eps": "fp32", "H": "i32"}
    ops = [("ssd", dict(SCALAR_DECAY=True, DELTA=False, a=None, b=None)),
           ("gla", dict(SCALAR_DECAY=False, DELTA=False, a=None, b=None)),
           ("delta", dict(SCALAR_DECAY=False, DELTA=True))]
    interpreted, dispatch.triton_interpreted = dispatch.triton_interpreted, lambda: False  # the GPU's launches
    try:
        for name, consts in ops:
            if only and name != only:
                continue
            for K in (64,) if quick else (64, 128):
                tiles = {dispatch.step_launch(BH, K, K, name == "delta") for BH in (16, 16 * 64)}
                tiles |= {(max(16, triton.next_power_of_2(K)), 16, 4)} if K <= 64 else set()
                for BK, BV, warps in sorted(tiles)[:1] if quick else sorted(tiles):
                    joined = [] if quick or name != "delta" else [(FLA_LIKE, {
                        k: v for part in FLA_LIKE.split("+") for k, v in STEP_VARIANTS[part].items()})]
                    for variant, vconsts in [("", {})] + list(STEP_VARIANTS.items()) + joined:
                        # s_out None but out of place, as a launch passes it (None compiles as a constant)
                        # the order of the launch it stands for: batch 64's (grid of 16·64 heads) where the tile is its
                        c = dict(consts, rk=None, nw=None, gz=None, K=K, V=K, BK=BK, BV=BV,
                                 EVEN=even_tile(K, K, BK, BV) and not (name == "ssd" and BV <= 8),
                                 **step_order(name == "delta", 16 * 64 * K // BV
                                              if (BK, BV, warps) == dispatch.step_launch(16 * 64, K, K, name == "delta")
                                              else 16 * K // BV)) | (
                            vconsts if "OUT_OF_PLACE" in vconsts else dict(vconsts, s_out=None))
                        regs, spills, cubin = compile_sm90(gated_step_kernel, types, c, warps, stages)
                        label = f"{name} {variant}".strip()
                        row = f"| {label} | {K} | - | {{'BK': {BK}, 'BV': {BV}}} | {warps} | {regs} | {spills} |"
                        yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")
        if not quick and only in ("", "delta"):  # the delta rule's step on its state held as Sᵀ, at its own launches
            for K in (64, 128):
                # each batch's launch (16 heads) with the order its grid takes
                launches = {(*dispatch.step_launch(16 * B, K, K, True, True), B) for B in (1, 8, 64)}
                for BK, BV, warps, B in sorted(launches):
                    c = dict(ops[2][1], rk=None, nw=None, gz=None, s_out=None, K=K, V=K, BK=BK, BV=BV, STATE_VK=True,
                             EVEN=even_tile(K, K, BK, BV), **step_order(True, 16 * B * (K // BV)))
                    regs, spills, cubin = compile_sm90(gated_step_kernel, types, c, warps, stages)
                    row = f"| delta Sᵀ, B={B} | {K} | - | {{'BK': {BK}, 'BV': {BV}}} | {warps} | {regs} | {spills} |"
                    yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")
        if not quick and only in ("", "fused read-out"):  # the step with its read-out fused, as read_out_launch picks
            for name, consts in ops[1:]:
                delta = name == "delta"
                for K in (64, 128):
                    BK, BV, warps = read_out_launch(16 * 64, K, K, True, rank_one=delta)
                    c = dict(consts, K=K, V=K, BK=BK, BV=BV, HAS_BONUS=delta, HAS_NORM=True, HAS_GATE=True, s_out=None,
                             EVEN=even_tile(K, K, BK, BV), **step_order(delta, 16 * 64 * K // BV))
                    c = c if delta else dict(c, rk=None)
                    regs, spills, cubin = compile_sm90(gated_step_kernel, types | {"rk": "*fp32", "nw": "*fp32", "gz": bf},
                                                       c, warps, stages)
                    row = f"| {name} fused read-out | {K} | - | {{'BK': {BK}, 'BV': {BV}}} | {warps} | {regs} | {spills} |"
                    yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")
        if only in ("", "read-out"):  # the split read-out's own launch (split_read_out), bonus, norm and gate
            for K in (64,) if quick else (64, 128):
                regs, spills, cubin = compile_sm90(read_out_kernel, types | {"rk": "*fp32", "nw": "*fp32", "y": bf, "gz": bf},
                                                   dict(K=K, V=K, BK=K, BV=K, HAS_BONUS=True, HAS_NORM=True, HAS_GATE=True),
                                                   max(1, min(4, K // 32)), stages)
                row = f"| read-out | {K} | - | {{'BK': {K}, 'BV': {K}}} | {max(1, min(4, K // 32))} | {regs} | {spills} |"
                yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")
        if not quick and only in ("", "fla"):
            yield from _fla_rwkv7_step(stages, sass)
    finally:
        dispatch.triton_interpreted = interpreted


def _fla_rwkv7_step(stages: int, sass: bool):
    """fla's RWKV-7 decode step (``fused_recurrent_rwkv7_fwd_kernel`` at T = 1, state read from ``h0`` and written
    to ``ht``) at the V blocks and warps its autotuner picked on an H200 (kernels/NOTES.md 67), beside ours; nothing
    where fla is not installed."""
    try:
        from fla.ops.rwkv7.fused_recurrent import fused_recurrent_rwkv7_fwd_kernel as kernel
    except Exception:  # noqa: BLE001
        return
    types = {n: "*bf16" for n in ("r", "w", "k", "v", "kk", "a", "o")} | {"h0": "*fp32", "ht": "*fp32", "scale": "fp32",
                                                                       "T": "i32"}
    for K, BV, warps in ((64, 16, 8), (128, 32, 2)):
        consts = dict(B=64, H=16, K=K, V=K, BK=K, BV=BV, REVERSE=False, USE_INITIAL_STATE=True, STORE_FINAL_STATE=True,
                      IS_VARLEN=False, IS_DECODE=True, cu_seqlens=None)
        regs, spills, cubin = compile_sm90(kernel, types, consts, warps, stages)
        row = f"| fla rwkv7 step | {K} | - | {{'BK': {K}, 'BV': {BV}}} | {warps} | {regs} | {spills} |"
        yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")


def mamba2_step(stages: int, sass: bool = False, only: str = "", quick: bool = False):
    """The fused Mamba2 decode step (conv update, dt, state, D, gated norm; ``_mamba2_step_kernel``) with every
    part on, one group per head, at P = N = 64 and 128 on 4, 8 and 16 warps: the shipped launch takes 8 warps from
    an [N, P] tile of 8K elements, else 4 (kernels/NOTES.md 69)."""
    from kernels.mamba2_step.triton_step import _mamba2_step_kernel

    bf = "*bf16"
    types = {"zxbcdt": bf, "y": bf, "cs": bf, "cw": bf, "cb": bf, "ssm": "*fp32", "dt_bias": "*fp32", "A_log": "*fp32",
             "Dp": "*fp32", "nw": "*fp32", "scale": "fp32", "eps": "fp32", "row_stride": "i32"}
    for P in (64,) if quick else (64, 128):
        for warps in (4,) if quick else (4, 8, 16):
            consts = dict(H=16, HKV=16, P=P, N=P, W=4, WP=4, BP=P, BN=P, HAS_CONV=True, HAS_CB=True, HAS_D=True,
                          HAS_NORM=True, GATE=True)
            regs, spills, cubin = compile_sm90(_mamba2_step_kernel, types, consts, warps, stages)
            row = f"| step | {P} | - | {{'BN': {P}, 'BP': {P}}} | {warps} | {regs} | {spills} |"
            yield row + (f" {fmt_sass(disassemble(cubin))} |" if sass else "")


AUTOTUNED = ("gla_chunk_bwd", "gla_chunk_fwd", "ssd_chunk_fwd")  # groups whose tiles are their autotuners' configs
GROUPS = {"delta_chunk_bwd": delta_chunk_bwd, "delta_chunk_fwd": delta_chunk_fwd, "gla_chunk_bwd": gla_chunk_bwd,
          "gla_chunk_fwd": gla_chunk_fwd, "ssd_chunk_fwd": ssd_chunk_fwd, "decode_step": decode_step,
          "mamba2_step": mamba2_step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kernels", choices=sorted(GROUPS))
    ap.add_argument("--stages", type=int, default=2, help="num_stages (the 16-bit configs use 2)")
    ap.add_argument("--sass", action="store_true", help="also each loop's SASS instruction mix (nvdisasm)")
    ap.add_argument("--kernel", default="", help="only the kernels of this name (e.g. scores)")
    ap.add_argument("--quick", action="store_true", help="K = 64, BT = 32 and each kernel's first tile only")
    ap.add_argument("--out", default="", help="also write the table here")
    ap.add_argument("--dump", default="", metavar="DIR", help="also write each row's whole SASS to DIR (implies --sass), "
                    "one file per row, numbered in the table's order, to read two kernels side by side")
    args = ap.parse_args()
    args.sass = args.sass or bool(args.dump)
    head = "| kernel | K = V | BT | tile | warps | registers | spill stores (bytes) |" + (" SASS |" if args.sass else "")
    stages = "each config's own num_stages" if args.kernels in AUTOTUNED else f"num_stages={args.stages}"
    lines = [f"ptxas (triton {triton.__version__}) sm_90a, bf16 inputs, {stages}", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    print("\n".join(lines), flush=True)
    for i, row in enumerate(GROUPS[args.kernels](args.stages, args.sass, args.kernel, args.quick)):
        print(row, flush=True)
        lines.append(row)
        if args.dump and _LAST_SASS:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            Path(args.dump, dump_name(i, row)).write_text(_LAST_SASS.pop())
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

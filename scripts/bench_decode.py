"""Per-step decode latency and state memory of a recurrent student vs a transformer, across context lengths.

What a miner cares about: the cost of one 80 ms frame's step after a long session. For each
context length L the student is prefilled with L tokens (chunked Triton scan), then one decode
step is timed eagerly and as a captured CUDA graph replay (the state is preallocated and updated
in place, so the whole step is one graph). The transformer baseline (HF Llama of the same width
and depth, the teacher's architecture) decodes with its KV cache after the same prefill.

Correctness gate: before timing, the student's Triton path (prefill + steps) is compared in fp32
with the plain-PyTorch reference path; the benchmark refuses to time if they disagree.

Usage (GPU):  python scripts/bench_decode.py --out results_dir
Prints device, date, shapes, medians; writes bench_decode.{md,json} into --out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from students import StudentConfig, StudentLM  # noqa: E402


def build_student(args, impl: str) -> StudentLM:
    cfg = StudentConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        intermediate_size=args.ffn,
        pattern=args.pattern,
        mixers={"mamba2": {"chunk_size": 64}},
        impl=impl,
    )
    torch.manual_seed(0)
    return StudentLM(cfg)


def _run_path(model, ids, prefill: int) -> torch.Tensor:
    state = model.allocate_state(ids.shape[0])
    parts = [model(ids[:, :prefill], state=state).logits]
    for t in range(prefill, ids.shape[1]):
        parts.append(model.step(ids[:, t], state).unsqueeze(1))
    return torch.cat(parts, 1).float()


@torch.no_grad()
def gate(args, device) -> dict:
    ref = build_student(args, "naive").to(device).float().eval()
    fast = build_student(args, "triton").to(device).float().eval()
    fast.load_state_dict(ref.state_dict())
    ids = torch.randint(0, args.vocab, (2, 96), device=device)
    a, b = _run_path(ref, ids, 80), _run_path(fast, ids, 80)
    rel = ((a - b).norm() / a.norm()).item()
    full = ref(ids).logits.float()
    stream_rel = ((a - full).norm() / full.norm()).item()
    return {"triton_vs_reference_rel": rel, "reference_stream_vs_forward_rel": stream_rel}


def time_cuda(fn, iters: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean ms per call over ``iters`` calls (CUDA events)."""
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / iters)
    return statistics.median(times)


@torch.no_grad()
def bench_student(model, L: int, args, device) -> dict:
    B = args.batch
    state = model.allocate_state(B)
    ids = torch.randint(0, args.vocab, (B, L), device=device)
    model(ids, state=model.allocate_state(B))  # warm-up: Triton compiles/autotunes for this length
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    model(ids, state=state)
    end.record()
    torch.cuda.synchronize()
    prefill_ms = start.elapsed_time(end)
    static_ids = torch.randint(0, args.vocab, (B,), device=device)
    eager_ms = time_cuda(lambda: model.step(static_ids, state), args.iters, args.repeats)
    # Capture one whole step (all layers) in a CUDA graph; replays reuse the same state tensors.
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            model.step(static_ids, state)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = model.step(static_ids, state)
    graph_ms = time_cuda(graph.replay, args.iters, args.repeats)
    assert torch.isfinite(static_out).all(), "non-finite logits after graph replays"
    return {"prefill_ms": prefill_ms, "step_eager_ms": eager_ms, "step_graph_ms": graph_ms, "state_bytes": state.nbytes}


@torch.no_grad()
def bench_transformer(L: int, args, device, dtype) -> dict:
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.ffn,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.contexts) + 4096,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    B = args.batch
    ids = torch.randint(0, args.vocab, (B, L), device=device)
    model(ids, past_key_values=DynamicCache(), use_cache=True)  # warm-up (cuBLAS/SDPA setup for this length)
    cache = DynamicCache()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    out = model(ids, past_key_values=cache, use_cache=True)
    end.record()
    torch.cuda.synchronize()
    prefill_ms = start.elapsed_time(end)
    nxt = out.logits[:, -1:].argmax(-1)
    # Each timed call appends one position; the cache grows by iters·repeats ≪ L.
    step_ms = time_cuda(lambda: model(nxt, past_key_values=cache, use_cache=True), args.iters_tf, args.repeats)
    kv_bytes = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return {"prefill_ms": prefill_ms, "step_eager_ms": step_ms, "kv_cache_bytes": kv_bytes}


def hbm_bandwidth(device) -> float:
    x = torch.empty(256 * 1024**2, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    ms = time_cuda(lambda: y.copy_(x), 20, 5)
    return 2 * x.numel() / (ms * 1e-3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=16)
    p.add_argument("--ffn", type=int, default=2816)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--pattern", default="mamba2")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--contexts", type=int, nargs="+", default=[512, 4096, 16384])
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--iters-tf", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-transformer", action="store_true")
    p.add_argument("--out", type=Path, default=Path("."))
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_decode needs a CUDA device (this measures GPU decode latency)")
    device = torch.device("cuda")
    dtype = torch.bfloat16
    env = {
        "device": torch.cuda.get_device_name(),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "shape": (
            f"d={args.hidden} layers={args.layers} heads={args.heads} kv={args.kv_heads} "
            f"ffn={args.ffn} vocab={args.vocab} batch={args.batch}"
        ),
    }
    print(json.dumps(env), flush=True)
    g = gate(args, device)
    print(
        f"gate: triton vs reference rel err {g['triton_vs_reference_rel']:.2e}; "
        f"reference stream vs forward {g['reference_stream_vs_forward_rel']:.2e}"
    )
    # tf32 may be used by cuBLAS for fp32 matmuls on both paths; the scans themselves are fp32.
    if not (g["triton_vs_reference_rel"] < 1e-3 and g["reference_stream_vs_forward_rel"] < 1e-4):
        sys.exit("correctness gate FAILED: refusing to time the Triton student")
    bw = hbm_bandwidth(device)
    student = build_student(args, "triton").to(device=device, dtype=dtype).eval()
    weight_bytes = sum(t.numel() * t.element_size() for t in student.parameters())
    floor_ms = weight_bytes / bw * 1e3
    rows = []
    for L in args.contexts:
        s = bench_student(student, L, args, device)
        row = {"context": L, **{f"student_{k}": v for k, v in s.items()}}
        if not args.no_transformer:
            row.update({f"transformer_{k}": v for k, v in bench_transformer(L, args, device, dtype).items()})
            torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {**env, "gate": g, "hbm_bytes_per_s": bw, "student_weight_bytes": weight_bytes, "floor_ms": floor_ms, "rows": rows}
    lines = [
        f"# Decode latency: {env['device']}, {env['date']}, torch {env['torch']}",
        "",
        f"Shape: {env['shape']}, bf16. Student: {args.pattern} ({weight_bytes / 2**20:.0f} MiB of weights; floor = weights / "
        f"{bw / 1e12:.2f} TB/s measured copy bandwidth = {floor_ms:.3f} ms). Gate: Triton vs reference rel err "
        f"{g['triton_vs_reference_rel']:.1e} (fp32).",
        "",
        "| context | student step, CUDA graph (ms) | student step, eager (ms) | student prefill (ms) | student state (MiB) "
        "| transformer step, eager (ms) | transformer prefill (ms) | transformer KV cache (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['context']} | {r['student_step_graph_ms']:.3f} | {r['student_step_eager_ms']:.2f} | {r['student_prefill_ms']:.1f} "
            f"| {r['student_state_bytes'] / 2**20:.2f} | {r.get('transformer_step_eager_ms', float('nan')):.2f} "
            f"| {r.get('transformer_prefill_ms', float('nan')):.1f} | {r.get('transformer_kv_cache_bytes', 0) / 2**20:.1f} |"
        )
    graph = [r["student_step_graph_ms"] for r in rows]
    lines += [
        "",
        f"Student step (graph) max/min across contexts: {max(graph) / min(graph):.2f}; best {min(graph) / floor_ms:.1f}× the floor.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_decode.json").write_text(json.dumps(result, indent=1))
    (args.out / "bench_decode.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

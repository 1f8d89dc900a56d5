"""Train the flat Llama speech-token teacher on the token shards (plain PyTorch: AdamW, warmup + cosine, bf16 autocast).

Reads the flat sequences from the compact ``.npz`` written by ``scripts/tokenize_corpus.py --npz`` (no ``datasets``
needed, e.g. on the GPU machine) or from the shards directory. Each step samples utterances, crops each to
``--max-len`` tokens at a random frame boundary (never across utterances), right-pads and masks the padding. The best
model on the validation split is saved with ``teachers.save_teacher`` (loadable by
``teachers.build_teacher("llama", path=...)``); ``ckpt.pt`` holds everything needed to resume, so a run can be cut into
calls of under ten minutes (``--time-budget``) and continued with ``--resume``. Logs go to ``log.csv``; held-out
metrics (NLL per stream and codebook vs a slot-wise unigram fitted on train) to ``metrics_<split>.json``.

Usage: ``python scripts/train_teacher.py --data tokens.npz --out runs/teacher [--steps 4000] [--time-budget 480]``
       ``python scripts/train_teacher.py --data SHARDS --out DIR --eval-only test``
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from teachers import build_teacher, save_teacher  # noqa: E402
from teachers.codec.layout import FlatLayout  # noqa: E402
from teachers.llama import LlamaTeacher  # noqa: E402


def load_tokens(path: str) -> tuple[dict[str, list[np.ndarray]], dict]:
    """``{split: [flat ids int64 per utterance]}`` and the layout dict, from an ``.npz`` or a shards directory."""
    p = Path(path)
    if p.suffix == ".npz":
        z = np.load(p)
        layout = json.loads(str(z["layout"]))
        out = {}
        for split in ("train", "validation", "test"):
            if f"{split}_ids" in z:
                ids, off = z[f"{split}_ids"].astype(np.int64), z[f"{split}_offsets"]
                out[split] = [ids[a:b] for a, b in zip(off[:-1], off[1:], strict=False)]
        return out, layout
    from datasets import load_from_disk

    dd = load_from_disk(str(p))
    layout = json.loads((p / "layout.json").read_text())
    return {s: [np.asarray(r, dtype=np.int64) for r in dd[s]["input_ids"]] for s in dd}, layout


def slot_unigram(rows: list[np.ndarray], layout: FlatLayout) -> np.ndarray:
    """Add-one-smoothed unigram log-probabilities per slot (stream × codebook): ``[2K, V]``."""
    tps = layout.tokens_per_step
    counts = np.ones((tps, layout.vocab_size))
    for r in rows:
        g = r.reshape(-1, tps)
        for j in range(tps):
            np.add.at(counts[j], g[:, j], 1)
    return np.log(counts / counts.sum(1, keepdims=True))


def make_batch(rows: list[np.ndarray], max_len: int, tps: int, rng: np.random.Generator, pad_id: int):
    """Crop each row to ``max_len`` tokens at a random step boundary; right-pad. → ids ``[B, L]``, mask ``[B, L]``."""
    crops = []
    for r in rows:
        if len(r) > max_len:
            start = int(rng.integers(0, (len(r) - max_len) // tps + 1)) * tps
            r = r[start : start + max_len]
        crops.append(r)
    n = max(len(c) for c in crops)
    ids = torch.full((len(crops), n), pad_id, dtype=torch.long)
    mask = torch.zeros(len(crops), n, dtype=torch.bool)
    for i, c in enumerate(crops):
        ids[i, : len(c)] = torch.from_numpy(c)
        mask[i, : len(c)] = True
    return ids, mask


def lm_loss(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over real (unpadded) targets."""
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
    tgt = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)


@torch.no_grad()
def evaluate(model, rows: list[np.ndarray], layout: FlatLayout, unigram: np.ndarray, max_len: int, device, batch_size: int = 16,
             autocast: bool = False) -> dict:
    """Held-out NLL (nats/token) per stream × codebook slot, the slot unigram's, and totals (first ``max_len`` tokens)."""
    model.eval()
    tps, k = layout.tokens_per_step, layout.num_codebooks
    nll_sum, uni_sum, count = np.zeros(tps), np.zeros(tps), np.zeros(tps)
    code_nll, code_uni, code_n = np.zeros(tps), np.zeros(tps), np.zeros(tps)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for b in range(0, len(order), batch_size):
        batch = [rows[i][:max_len] for i in order[b : b + batch_size]]
        ids, mask = make_batch(batch, max_len, tps, np.random.default_rng(0), layout.special_tokens["pad"])
        ids, mask = ids.to(device), mask.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none").cpu().numpy()
        tgt = ids[:, 1:].cpu().numpy()
        valid = mask[:, 1:].cpu().numpy()
        slot = (np.arange(1, ids.shape[1]) % tps)[None].repeat(ids.shape[0], 0)
        uni = unigram[slot, tgt]
        is_code = tgt >= layout.num_special
        for j in range(tps):
            sel = valid & (slot == j)
            nll_sum[j] += nll[sel].sum()
            uni_sum[j] += -uni[sel].sum()
            count[j] += sel.sum()
            sc = sel & is_code
            code_nll[j] += nll[sc].sum()
            code_uni[j] += -uni[sc].sum()
            code_n[j] += sc.sum()
    model.train()
    n = count.sum()
    out: dict = {"tokens": int(n), "nll": float(nll_sum.sum() / n), "unigram_nll": float(uni_sum.sum() / n)}
    for j in range(tps):
        name = f"{layout_stream(j, k)}/cb{j % k}"
        c, cc = max(count[j], 1), max(code_n[j], 1)
        out[name] = {"nll": float(nll_sum[j] / c), "unigram_nll": float(uni_sum[j] / c),
                     "code_nll": float(code_nll[j] / cc), "code_unigram_nll": float(code_uni[j] / cc),
                     "tokens": int(count[j]), "code_tokens": int(code_n[j])}
    for s in ("source", "target"):
        js = [j for j in range(tps) if layout_stream(j, k) == s]
        out[f"{s}/nll"] = float(nll_sum[js].sum() / count[js].sum())
        out[f"{s}/unigram_nll"] = float(uni_sum[js].sum() / count[js].sum())
        out[f"{s}/code_nll"] = float(code_nll[js].sum() / code_n[js].sum())
        out[f"{s}/code_unigram_nll"] = float(code_uni[js].sum() / code_n[js].sum())
    return out


def layout_stream(j: int, k: int) -> str:
    return "source" if j < k else "target"


def teacher_config(layout: FlatLayout, args) -> dict:
    return dict(
        model_type="llama", vocab_size=layout.vocab_size, hidden_size=args.hidden, intermediate_size=args.ffn,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads, max_position_embeddings=args.max_positions, rope_theta=10000.0,
        tie_word_embeddings=False, attention_dropout=args.attention_dropout, pad_token_id=layout.special_tokens["pad"],
        bos_token_id=None, eos_token_id=None,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=768)
    p.add_argument("--attention-dropout", type=float, default=0.0, help="the corpus is small: regularise")
    p.add_argument("--max-positions", type=int, default=2048)
    p.add_argument("--max-len", type=int, default=1024, help="training crop, tokens (a multiple of 2K)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--time-budget", type=float, default=480.0, help="seconds; checkpoint and stop before this")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--eval-only", default=None, help="evaluate OUT/teacher on this split and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    use_bf16 = device.type == "cuda"
    splits, layout_dict = load_tokens(args.data)
    layout = FlatLayout.from_dict(layout_dict)
    tps, pad_id = layout.tokens_per_step, layout.special_tokens["pad"]
    if args.max_len % tps:
        raise ValueError(f"--max-len={args.max_len} must be a multiple of {tps} tokens per step")
    unigram = slot_unigram(splits["train"], layout)

    if args.eval_only:
        teacher = build_teacher("llama", path=str(out / "teacher"), device=args.device)
        metrics = evaluate(teacher.model, splits[args.eval_only], layout, unigram, args.max_positions, device, autocast=use_bf16)
        metrics.update({"split": args.eval_only, "device": torch.cuda.get_device_name() if use_bf16 else "cpu",
                        "date": time.strftime("%Y-%m-%d")})
        (out / f"metrics_{args.eval_only}.json").write_text(json.dumps(metrics, indent=1))
        print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=1))
        return

    torch.manual_seed(args.seed)
    teacher = build_teacher("llama", config=teacher_config(layout, args), seed=args.seed, token_layout=layout.to_dict())
    model = teacher.model.to(device)
    model.train()
    model.requires_grad_(True)
    print(f"teacher: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, vocab {layout.vocab_size}, "
          f"{len(splits['train'])} train utterances, {sum(len(r) for r in splits['train']) / 1e6:.2f}M tokens")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))

    step, best, rng = 0, float("inf"), np.random.default_rng(args.seed)
    ckpt_path = out / "ckpt.pt"
    if args.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best, rng = ck["step"], ck["best"], ck["rng"]
        print(f"resumed at step {step} (best val nll {best:.4f})")
    log_path = out / "log.csv"
    new_log = not log_path.is_file() or not args.resume
    log_f = open(log_path, "w" if new_log else "a", newline="")
    log = csv.writer(log_f)
    if new_log:
        log.writerow(["step", "lr", "train_loss", "val_nll", "val_target_code_nll", "tokens_seen", "elapsed_s"])

    def save_ckpt():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best, "rng": rng}, ckpt_path)

    train_rows = splits["train"]
    running, n_run, tokens_seen = 0.0, 0, 0
    while step < args.steps:
        if time.time() - t_start > args.time_budget:
            print(f"time budget reached at step {step}; checkpointing (continue with --resume)")
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = [train_rows[i] for i in rng.integers(0, len(train_rows), args.batch_size)]
        ids, mask = make_batch(batch, args.max_len, tps, rng, pad_id)
        ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = lm_loss(model, ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        running += loss.item() if step % 25 == 0 or step == args.steps else 0.0
        n_run += 1 if step % 25 == 0 or step == args.steps else 0
        tokens_seen += int(mask.sum())
        if step % args.eval_every == 0 or step == args.steps:
            m = evaluate(model, splits["validation"], layout, unigram, args.max_positions, device, autocast=use_bf16)
            train_loss = running / max(n_run, 1)
            running, n_run = 0.0, 0
            log.writerow([step, f"{lr_at(step):.2e}", f"{train_loss:.4f}", f"{m['nll']:.4f}", f"{m['target/code_nll']:.4f}",
                          tokens_seen, f"{time.time() - t_start:.0f}"])
            log_f.flush()
            print(f"step {step}: train {train_loss:.3f} val {m['nll']:.3f} (unigram {m['unigram_nll']:.3f}) "
                  f"target codes {m['target/code_nll']:.3f} (unigram {m['target/code_unigram_nll']:.3f}) "
                  f"[{time.time() - t_start:.0f}s]", flush=True)
            if m["nll"] < best:
                best = m["nll"]
                # The adapter freezes what it wraps: hand it a copy, not the model being trained.
                frozen = LlamaTeacher(copy.deepcopy(model), layout.to_dict(), source="scripts/train_teacher.py")
                save_teacher(frozen, out / "teacher")
                m.update({"split": "validation", "step": step})
                (out / "metrics_validation.json").write_text(json.dumps(m, indent=1))
    save_ckpt()
    log_f.close()
    (out / "train_args.json").write_text(json.dumps(vars(args), indent=1))
    print(f"done: step {step}, best val nll {best:.4f}, {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()

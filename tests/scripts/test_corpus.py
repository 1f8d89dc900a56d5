"""Corpus builder pieces and the shipped shards: dialog parsing, deterministic splits, no leakage across splits."""

import json
import re
from pathlib import Path

import pytest
from script_module import load

ROOT = Path(__file__).resolve().parents[2]
SHARDS = ROOT / "teachers" / "pretrained" / "fillets-s2st" / "shards"


def _load_script(name: str):
    pytest.importorskip("soundfile")  # the corpus scripts' audio I/O (a build-time dependency)
    return load(name)


def test_parse_dialogs_and_speech_filter(tmp_path):
    bc = _load_script("build_corpus")
    lua = tmp_path / "dialogs_fr.lua"
    lua.write_text('dialogId("a-m-1", "font_small", "What is \\"that\\"?")\ndialogStr("Qu\'est-ce que c\'est ?")\n\n'
                   'dialogId("a-v-2", "font_big", "No translation here.")\n'
                   'dialogId("text0", "font_white", "mplayer menu.ogg")\ndialogStr("x")\n', encoding="utf-8")
    d = bc.parse_dialogs(lua)
    assert d["a-m-1"] == ('What is "that"?', "Qu'est-ce que c'est ?")
    assert d["a-v-2"] == ("No translation here.", None)
    assert bc.is_speech(d["a-m-1"][0]) and not bc.is_speech(d["text0"][0]) and not bc.is_speech("...")


def test_split_is_deterministic_and_roughly_proportioned():
    bc = _load_script("build_corpus")
    keys = [f"line {i}" for i in range(4000)]
    splits = [bc.split_of(k) for k in keys]
    assert splits == [bc.split_of(k) for k in keys]
    for name, frac in bc.SPLIT_FRACTIONS.items():
        assert abs(splits.count(name) / len(keys) - frac) < 0.015


def test_shipped_shards_do_not_leak_across_splits():
    from datasets import load_from_disk

    dd = load_from_disk(str(SHARDS))
    dialogs, texts = {}, {}
    for split in ("train", "validation", "test"):
        ids = dd[split]["utt_id"]
        # utt_id = <src_lang>/<level>/<dialog id>: the same line in another source language shares level/dialog id
        dialogs[split] = {u.split("/", 1)[1] for u in ids}
        texts[split] = {re.sub(r"\W+", " ", t.lower()).strip() for t in dd[split]["text_en"]}
        assert len(ids) > 0
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not dialogs[a] & dialogs[b], f"dialog lines shared by {a} and {b}"
        assert not texts[a] & texts[b], f"English lines shared by {a} and {b}"


def test_shipped_shards_match_their_layout():
    import torch
    from datasets import load_from_disk

    from teachers.codec.layout import FlatLayout

    layout = FlatLayout.from_dict(json.loads((SHARDS / "layout.json").read_text()))
    row = load_from_disk(str(SHARDS))["test"][0]
    src, tgt = (torch.tensor(row[c], dtype=torch.long) for c in ("src_codes", "tgt_codes"))
    ids = torch.tensor(row["input_ids"], dtype=torch.long)
    assert torch.equal(layout.flatten(src, tgt), ids)
    assert ids.max() < layout.vocab_size and (ids != layout.special_tokens["pad"]).all()

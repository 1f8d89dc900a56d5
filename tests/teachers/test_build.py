"""build_teacher's bad-input errors name the field and the fix."""

import json

import pytest

from teachers import TEACHER_BUILDERS, build_teacher

TINY = dict(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)


def test_kinds_registered():
    assert {"llama", "moshi"} <= set(TEACHER_BUILDERS)


def test_unknown_kind_lists_kinds():
    with pytest.raises(ValueError, match=r"unknown teacher.kind='gpt2'; supported: \[.*'llama'.*'moshi'"):
        build_teacher("gpt2", config=TINY)


def test_unsupported_model_type_names_supported():
    with pytest.raises(ValueError, match=r"model_type='gemma'.*\['llama', 'mistral', 'qwen2'\]"):
        build_teacher("llama", config=dict(model_type="gemma", **TINY))
    with pytest.raises(ValueError, match=r"model_type='<missing>'"):
        build_teacher("llama", config=TINY)


@pytest.mark.parametrize("present, missing", [([], "config.json"), (["config.json"], "model.safetensors")])
def test_local_path_names_missing_file(tmp_path, present, missing):
    for name in present:
        (tmp_path / name).write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(FileNotFoundError, match=rf"has no {missing}"):
        build_teacher("llama", path=str(tmp_path))


def test_local_path_must_be_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        build_teacher("moshi", path=str(tmp_path / "absent"))


def test_local_path_wrong_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"teacher.kind='moshi' got model_type='llama'.*\['moshi'\]"):
        build_teacher("moshi", path=str(tmp_path))


def test_config_xor_path():
    with pytest.raises(ValueError, match="exactly one of teacher.config"):
        build_teacher("llama")


def test_unknown_option_named():
    with pytest.raises(ValueError, match=r"no options \['audio_logits'\]"):
        build_teacher("llama", config=dict(model_type="llama", **TINY), audio_logits=True)


def test_moshi_depth_keys_refused():
    # MoshiConfig silently ignores depth_* keys and builds a 700M-parameter depth decoder.
    with pytest.raises(ValueError, match="depth_decoder_config"):
        build_teacher("moshi", config=dict(vocab_size=32, depth_hidden_size=16))

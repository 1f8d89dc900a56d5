"""The export gate: a student that does not stream correctly is never published."""

import pytest
import torch

from distill.export import ExportVerificationError, export_student
from students import StudentConfig, StudentLM, load_student


def _student():
    cfg = StudentConfig(
        vocab_size=40,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=8,
        intermediate_size=48,
        pattern="mamba2",
        mixers={"mamba2": {"chunk_size": 8}},
        impl="naive",
    )
    return StudentLM(cfg)


def test_export_round_trip_and_overwrite(tmp_path):
    model = _student()
    ids = torch.randint(0, 40, (2, 21))
    res = export_student(model, tmp_path / "exp", ids, extra={"note": "x"})
    assert res["reload_max_abs"] == 0.0 and res["stream"]["max_abs"] < 1e-4
    reloaded = load_student(tmp_path / "exp")
    torch.testing.assert_close(reloaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    with pytest.raises(FileExistsError, match="export.overwrite"):
        export_student(model, tmp_path / "exp", ids)
    export_student(model, tmp_path / "exp", ids, overwrite=True)


def test_broken_streaming_fails_and_leaves_nothing(tmp_path, monkeypatch):
    model = _student()
    ids = torch.randint(0, 40, (2, 21))
    from students.mixers.mamba2 import Mamba2Mixer

    real_step = Mamba2Mixer.step
    monkeypatch.setattr(Mamba2Mixer, "step", lambda self, x, state: real_step(self, x, state) * 1.01)
    with pytest.raises(ExportVerificationError, match="prefill\\+step"):
        export_student(model, tmp_path / "exp", ids)
    assert not (tmp_path / "exp").exists()
    assert not list(tmp_path.iterdir()), "no staging or temp dirs may remain"


def test_load_student_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_student(tmp_path)

"""End-to-end runs through run(cfg) on tiny settings, and the run's refusals."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from distill.run import run
from students import load_student

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _cfg(tmp_path, overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.log_dir = str(tmp_path / "logs")
        del cfg.hydra
    return cfg


FAST = [
    "+experiment=smoke",
    "trainer.max_steps=40",
    "trainer.val_check_interval=20",
    "trainer.limit_val_batches=2",
    "trainer.enable_progress_bar=false",
    "data.teacher_samples.num_train=32",
    "data.teacher_samples.num_validation=8",
    "data.teacher_samples.length=64",
    "eval.max_batches=2",
]


@pytest.mark.slow
def test_smoke_run_lowers_kl_and_exports_a_streaming_student(tmp_path):
    cfg = _cfg(tmp_path, FAST)
    value = run(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    m = metrics["metrics"]
    assert value == pytest.approx(m["val/kl"])
    assert m["val/kl"] < m["init/kl"], "distillation did not lower the held-out KL"
    assert m["stream/parity_max_abs"] < 1e-4
    assert m["export/reload_max_abs"] < 1e-4
    export = out / "export"
    assert (export / "model.safetensors").is_file() and (export / "config.json").is_file()
    meta = json.loads((export / "config.json").read_text())
    assert meta["verification"]["verified"] is True
    assert meta["student"]["pattern"] == ["mamba2", "mamba2"]
    assert "layers.0.ssm" in meta["state_spec"]
    report = json.loads((out / "init_report.json").read_text())
    assert report["n_copied"] > 0
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert load_student(export).num_parameters() > 0
    assert not list(out.glob(".export*")), "staging dirs must not be left behind"


def test_existing_export_dir_is_refused_before_any_work(tmp_path):
    cfg = _cfg(tmp_path, FAST)
    Path(cfg.export.dir).mkdir(parents=True)
    (Path(cfg.export.dir) / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="export.overwrite=true"):
        run(cfg)
    assert (Path(cfg.export.dir) / "keep.txt").read_text() == "user data"
    assert not (Path(cfg.paths.output_dir) / "init_report.json").exists()


def test_teacher_that_is_not_a_causal_transformer_is_refused(tmp_path):
    cfg = _cfg(tmp_path, FAST + ["teacher.config.model_type=bert"])
    with pytest.raises(Exception, match="model_type=.bert.") as err:
        run(cfg)
    assert "llama" in str(err.value)


def test_unknown_mixer_kind_lists_known_kinds(tmp_path):
    cfg = _cfg(tmp_path, FAST + ["student.pattern=transformerxl"])
    with pytest.raises(ValueError, match="known kinds"):
        run(cfg)


@pytest.mark.slow
def test_moshi_multistream_run_with_audio_kd_exports_a_streaming_student(tmp_path):
    cfg = _cfg(
        tmp_path,
        [
            "+experiment=moshi_mamba2",
            "loss=kd_audio",
            "teacher.audio_logits=true",
            "trainer.max_steps=10",
            "trainer.val_check_interval=10",
            "trainer.limit_val_batches=1",
            "trainer.enable_progress_bar=false",
            "data.teacher_samples.num_train=8",
            "data.teacher_samples.num_validation=4",
            "data.teacher_samples.length=24",
            "data.window=16",
            "eval.max_batches=1",
        ],
    )
    run(cfg)
    out = Path(cfg.paths.output_dir)
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["stream/parity_max_abs"] < 1e-4
    logged = (out / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/audio_kl" in logged
    meta = json.loads((out / "export" / "config.json").read_text())
    assert len(meta["student"]["stream_vocab_sizes"]) == 9  # text + 2 x 4 codebooks


@pytest.mark.slow
def test_staged_recipe_chains_through_the_export(tmp_path):
    stage1 = _cfg(tmp_path / "s1", FAST + ["loss=attn_transfer", "trainable=mixers", "trainer.max_steps=10"])
    run(stage1)
    m1 = json.loads((Path(stage1.paths.output_dir) / "metrics.json").read_text())["metrics"]
    assert m1["val/kl"] < m1["init/kl"], "aligning mixers with the teacher's attention must lower KL"
    stage2 = _cfg(tmp_path / "s2", FAST + ["init=export", f"init.path={stage1.export.dir}", "trainer.max_steps=10"])
    run(stage2)
    m2 = json.loads((Path(stage2.paths.output_dir) / "metrics.json").read_text())["metrics"]
    # stage 2 starts exactly where stage 1 ended (same held-out windows, same weights)
    assert m2["init/kl"] == pytest.approx(m1["val/kl"], rel=1e-6)
    with pytest.raises(ValueError, match="differs from this run's"):
        run(_cfg(tmp_path / "s3", FAST + ["init=export", f"init.path={stage1.export.dir}", "student=gla"]))

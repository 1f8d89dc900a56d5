"""Every config composes; bad choices fail with errors that name the fix."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException

import distill  # noqa: F401  (registers the distill_root resolver)

CONF = str(Path(__file__).resolve().parents[2] / "conf")
EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def test_primary_defaults_have_no_experiment_entry():
    cfg = _compose([])
    assert "experiment" not in cfg.hydra.runtime.choices


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_names_itself(name):
    cfg = _compose([f"+experiment={name}"])
    assert cfg.name == name, f"conf/experiment/{name}.yaml must set name: {name}"
    text = (Path(CONF) / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiments are global deltas"
    assert f"+experiment={name}" in text, "the header comment gives the exact command"


@pytest.mark.parametrize(
    "group", ["teacher", "student", "loss", "data", "trainer", "logger", "callbacks", "init", "optimizer", "scheduler"]
)
def test_every_group_option_composes(group):
    for option in sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml")):
        cfg = _compose([f"{group}={option}"] + (["init.path=x"] if (group, option) == ("init", "export") else []))
        assert group in cfg


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(MissingConfigException) as err:
        _compose(["+experiment=does_not_exist"])
    assert "smoke" in str(err.value)

"""``python -m distill +experiment=<name> [overrides]`` — parse the config, hand it to ``run``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from distill.run import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()

"""The one entry point: ``python train.py [overrides]`` (see conf/train.yaml and README.md)."""

import hydra
from omegaconf import DictConfig

from scene_model.runtime.run import main as run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()

"""The val splits of synthetic generator seeds: what the many-seed benchmark and the threshold sweep score on.

One val split of two sequences holds from ten to a hundred and fifty crossings, so a setting is judged
on the val splits of many generator seeds. Two fixed, disjoint sets: ``choosing`` (100-111), where
settings are compared, and ``reporting`` (200-211), what the results report. Each split is the val
split of the default ``data.synthetic`` with the seed replaced, generated once under a data folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from scene_model.data.synthetic import SyntheticSet, SyntheticSpec, ensure_synthetic_sets
from scene_model.errors import ConfigError
from scene_model.tools.compose import compose_run_config

SEED_SETS = {"choosing": tuple(range(100, 112)), "reporting": tuple(range(200, 212))}
SEEDS_HELP = "choosing (100-111), reporting (200-211) or generator seeds"


def seed_list(text: Sequence[str], flag: str = "--seeds") -> list[int]:
    """``choosing``, ``reporting`` or generator seeds (each once, in the order given)."""
    seeds: list[int] = []
    for item in text:
        if item not in SEED_SETS and not item.isdigit():
            raise ConfigError(f"{flag} {item}: expected {SEEDS_HELP} (integers from 0)")
        seeds += SEED_SETS[item] if item in SEED_SETS else [int(item)]
    return list(dict.fromkeys(seeds))


def seed_splits(seeds: Sequence[int], data_dir: Path) -> dict[int, Path]:
    """{seed: the data set holding the val split of generator ``seed``} under ``data_dir`` (as
    ``val_seed<N>``), those missing made now, after their size is checked against the free space."""
    values = OmegaConf.to_container(compose_run_config().data.synthetic, resolve=True)
    sets = [SyntheticSet(Path(data_dir) / f"val_seed{seed}", SyntheticSpec.from_dict({**values, "seed": seed}), ("val",))
            for seed in seeds]
    return dict(zip(seeds, ensure_synthetic_sets(sets, "fewer --seeds, free space or another --data-dir"), strict=True))

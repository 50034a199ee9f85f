"""Score checkpoints on the val splits of many synthetic generator seeds: the measurement that decides.

    python -m scene_model.tools.benchmark outputs/runs/A/checkpoints/last.ckpt outputs/runs/B/checkpoints/last.ckpt

One val split holds two sequences, and the crossings in them (where look-alike dancers swap places)
range from a handful to a hundred: HOTA on one split moves by 5-10 points with the draw. The
benchmark scores each checkpoint on the val splits of many generator seeds, generated once (val
sequences only, exactly as in the whole data set of that seed) under ``--data-dir``, and prints each
split's HOTA, DetA, AssA and IDF1 with its crossing count, then the mean and spread; with several
checkpoints (e.g. training seeds of one setting) also the mean and spread over them.

Two fixed, disjoint seed sets: ``--seeds choosing`` (100-111) is where settings are chosen,
``--seeds reporting`` (200-211, the default) is what docs/results.md reports. The data sets are those of
the default run config's ``data.synthetic`` with the seed replaced; the checkpoint's own data options
(evaluation size, windows) and tracker (``eval.tracker``, changed with ``--tracker KEY=VALUE``) are used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from scene_model.data.datamodule import EvalSplit
from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic
from scene_model.errors import SceneModelError
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.trained import TrainedRun, load_trained
from scene_model.tools.compose import compose_run_config, use_data_on_disk
from scene_model.tracking.mot_results import write_results
from scene_model.tracking.options import TrackerOptions, parse_assignments
from scene_model.tracking.sequence_tracker import SequenceTracker
from scene_model.tracking.trackeval_metrics import evaluate_mot

SEED_SETS = {"choosing": tuple(range(100, 112)), "reporting": tuple(range(200, 212))}
COLUMNS = ("HOTA", "DetA", "AssA", "IDF1")
CROSSING_IOU = 0.3  # two ground-truth boxes overlapping this much in a frame are a crossing


@dataclass
class SplitScore:
    seed: int
    sequences: int
    crossings: int
    metrics: dict[str, float]


def seed_list(text: Sequence[str]) -> list[int]:
    """``choosing``, ``reporting`` or generator seeds (each once, in the order given)."""
    seeds: list[int] = []
    for item in text:
        seeds += SEED_SETS[item] if item in SEED_SETS else [int(item)]
    return list(dict.fromkeys(seeds))


def benchmark_split(seed: int, data_dir: Path) -> Path:
    """The val split of generator ``seed`` (the default ``data.synthetic`` otherwise), made on first use."""
    values = OmegaConf.to_container(compose_run_config().data.synthetic, resolve=True)
    spec = SyntheticSpec.from_dict({**values, "seed": seed})
    return ensure_synthetic(Path(data_dir) / f"val_seed{seed}", spec, splits=("val",))


def crossings(split: EvalSplit, iou: float = CROSSING_IOU) -> int:
    """(frame, pair of dancers) where two ground-truth boxes of ``split`` overlap by more than ``iou``."""
    from torchvision.ops import box_convert, box_iou

    count = 0
    for record in split.sequences:
        gt = record.gt
        for frame in np.unique(gt.frames):
            boxes = box_convert(torch.from_numpy(gt.boxes[gt.frames == frame]), "xywh", "xyxy")
            overlap = box_iou(boxes, boxes).triu(diagonal=1)
            count += int((overlap > iou).sum())
    return count


def score_split(run: TrainedRun, root: Path, options: TrackerOptions, scratch: Path) -> tuple[EvalSplit, dict[str, float]]:
    """Track the val split at ``root`` with the checkpoint's model and ``options``; TrackEval's combined metrics."""
    cfg = OmegaConf.create(OmegaConf.to_container(run.cfg))
    use_data_on_disk(cfg, root)
    datamodule = ConfigLoader(cfg).build_datamodule()
    split = datamodule.eval_split("val")
    results = run.module.track_split(datamodule, split, SequenceTracker(options))
    results_dir = write_results(scratch / root.name, results)
    return split, evaluate_mot(split.directory, results_dir, sequences=split.lengths).combined


def score_checkpoint(run: TrainedRun, seeds: Sequence[int], data_dir: Path, changes: dict) -> list[SplitScore]:
    options = TrackerOptions.from_mapping(run.cfg.eval.tracker).replace(**changes)
    scores = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in seeds:
            split, metrics = score_split(run, benchmark_split(seed, data_dir), options, Path(scratch))
            scores.append(SplitScore(seed, len(split.sequences), crossings(split), {c: float(metrics[c]) for c in COLUMNS}))
    return scores


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def means(scores: Sequence[SplitScore]) -> dict[str, float]:
    return {c: statistics.fmean(s.metrics[c] for s in scores) for c in COLUMNS}


def report(per_checkpoint: dict[str, list[SplitScore]]) -> str:
    lines = []
    for path, scores in per_checkpoint.items():
        lines.append(f"{path}")
        lines.append(f"{'seed':>6}{'seqs':>6}{'cross':>7}" + "".join(f"{c:>8}" for c in COLUMNS))
        for s in scores:
            lines.append(f"{s.seed:6d}{s.sequences:6d}{s.crossings:7d}" + "".join(f"{s.metrics[c]:8.1f}" for c in COLUMNS))
        for name in ("mean", "std", "min", "max"):
            cells = "".join(f"{summary([s.metrics[c] for s in scores])[name]:8.1f}" for c in COLUMNS)
            lines.append(f"{name:>19}{cells}")
        lines.append("")
    if len(per_checkpoint) > 1:
        checkpoint_means = [means(scores) for scores in per_checkpoint.values()]
        lines.append(f"over {len(per_checkpoint)} checkpoints (each the mean of its splits):")
        for name in ("mean", "std", "min", "max"):
            cells = "".join(f"{summary([m[c] for m in checkpoint_means])[name]:8.1f}" for c in COLUMNS)
            lines.append(f"{name:>19}{cells}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scene_model.tools.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoints written by train.py")
    parser.add_argument("--seeds", nargs="+", default=["reporting"], metavar="SEED",
                        help="choosing (100-111), reporting (200-211, default) or generator seeds")
    parser.add_argument("--data-dir", type=Path, default=Path("data/benchmark"), help="where the val splits are kept")
    parser.add_argument("--tracker", nargs="+", default=[], metavar="KEY=VALUE", help="eval.tracker options, e.g. max_lost=10")
    parser.add_argument("--json", type=Path, default=None, help="also write every score to this JSON file")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, list[SplitScore]]:
    args = parse_args(argv)
    try:
        seeds, changes = seed_list(args.seeds), parse_assignments(args.tracker)
        per_checkpoint = {}
        for path in args.checkpoints:
            per_checkpoint[str(path)] = score_checkpoint(load_trained(path, args.device), seeds, args.data_dir, changes)
    except (SceneModelError, ValueError) as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(report(per_checkpoint))
    if args.json is not None:
        payload = {path: [s.__dict__ for s in scores] for path, scores in per_checkpoint.items()}
        args.json.write_text(json.dumps({"seeds": seeds, "tracker": changes, "checkpoints": payload}, indent=2) + "\n")
    return per_checkpoint


if __name__ == "__main__":
    main()

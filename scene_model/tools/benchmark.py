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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from scene_model.data.datamodule import EvalSplit
from scene_model.errors import ConfigError
from scene_model.outputs import writable_file, write_text_atomically
from scene_model.runtime.checkpoints import check_exists
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.trained import TrainedRun, load_trained
from scene_model.tools.benchmark_chart import write_chart
from scene_model.tools.cli import ToolParser, tool_main
from scene_model.tools.compose import use_data_on_disk
from scene_model.tools.seed_splits import SEEDS_HELP, seed_list, seed_splits
from scene_model.tracking.options import TrackerOptions, parse_assignments
from scene_model.tracking.scoring import mean_metrics, score_tracks
from scene_model.tracking.sequence_tracker import SequenceTracker

COLUMNS = ("HOTA", "DetA", "AssA", "IDF1")
CROSSING_IOU = 0.3  # two ground-truth boxes overlapping this much in a frame are a crossing


@dataclass
class SplitScore:
    seed: int
    sequences: int
    crossings: int
    metrics: dict[str, float]


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


def score_split(run: TrainedRun, root: Path, options: TrackerOptions) -> tuple[EvalSplit, dict[str, float]]:
    """Track the val split at ``root`` with the checkpoint's model and ``options``; TrackEval's combined metrics."""
    cfg = OmegaConf.create(OmegaConf.to_container(run.cfg))
    use_data_on_disk(cfg, root)
    datamodule = ConfigLoader(cfg).build_datamodule()
    split = datamodule.eval_split("val")
    return split, score_tracks(run.module.track_split(datamodule, split, SequenceTracker(options)), split).combined


def score_checkpoint(run: TrainedRun, roots: dict[int, Path], changes: dict) -> list[SplitScore]:
    """Each split of ``roots`` ({seed: data set}) tracked and scored with the checkpoint's model."""
    options = TrackerOptions.from_mapping(run.cfg.eval.tracker).replace(**changes)
    scores = []
    for seed, root in roots.items():
        split, metrics = score_split(run, root, options)
        scores.append(SplitScore(seed, len(split.sequences), crossings(split), {c: float(metrics[c]) for c in COLUMNS}))
    return scores


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


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
        checkpoint_means = [mean_metrics([s.metrics for s in scores]) for scores in per_checkpoint.values()]
        lines.append(f"over {len(per_checkpoint)} checkpoints (each the mean of its splits):")
        for name in ("mean", "std", "min", "max"):
            cells = "".join(f"{summary([m[c] for m in checkpoint_means])[name]:8.1f}" for c in COLUMNS)
            lines.append(f"{name:>19}{cells}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ToolParser(prog="python -m scene_model.tools.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT", help="checkpoints written by train.py")
    parser.add_argument("--seeds", nargs="+", default=["reporting"], metavar="SEED", help=f"{SEEDS_HELP} (default: reporting)")
    parser.add_output("--data-dir", folder=True, default=Path("data/benchmark"), help="where the val splits are kept")
    parser.add_argument("--tracker", nargs="+", default=[], metavar="KEY=VALUE", help="eval.tracker options, e.g. max_lost=10")
    parser.add_output("--json", default=None, help="also write every score to this JSON file, and the chart of HOTA against crossings beside it (.png)")
    parser.add_device()
    return parser.parse_args(argv)


@tool_main
def main(argv: list[str] | None = None) -> dict[str, list[SplitScore]]:
    args = parse_args(argv)  # --data-dir and --json are checked for writing here, before any scoring
    chart = writable_file(args.json.with_suffix(".png"), "--json") if args.json is not None else None
    seeds = seed_list(args.seeds)
    try:
        changes = parse_assignments(args.tracker)
    except ConfigError as err:
        raise ConfigError(f"--tracker {err}") from None
    for path in args.checkpoints:
        check_exists(path, "CKPT")
    roots = seed_splits(seeds, args.data_dir)
    per_checkpoint = {}
    for path in args.checkpoints:
        per_checkpoint[str(path)] = score_checkpoint(load_trained(path, args.device, "CKPT"), roots, changes)
    print(report(per_checkpoint))
    if args.json is not None:
        payload = {path: [s.__dict__ for s in scores] for path, scores in per_checkpoint.items()}
        document = json.dumps({"seeds": seeds, "tracker": changes, "checkpoints": payload}, indent=2) + "\n"
        write_text_atomically(args.json, document, "--json")
        series = {label(Path(path)): [(s.crossings, s.metrics["HOTA"]) for s in scores] for path, scores in per_checkpoint.items()}
        write_chart(chart, series, f"HOTA of each val split against its crossings (seeds {' '.join(args.seeds)})")
        print(f"written: {args.json}, {chart}")
    return per_checkpoint


def label(checkpoint: Path) -> str:
    """A checkpoint's name in the chart: its run directory and file (``<run>/last.ckpt``)."""
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return f"{run.name}/{checkpoint.name}"


if __name__ == "__main__":
    main()

"""Score a trained checkpoint's tracking over a grid of ``eval.tracker`` score thresholds.

The model runs once over the split's windows; every (start, keep) pair is then linked, written and
scored with TrackEval from those predictions. A model's scores (existence probabilities) depend
on how long and with which losses it trained, so the thresholds that suit it are found on val:

    python -m scene_model.tools.threshold_sweep outputs/runs/.../checkpoints/last.ckpt \\
        --start 0.5 0.3 0.2 0.1 --keep 0.3 0.1 0.05

The best pair is printed as the overrides to pass to ``train.py`` (``eval.tracker.start_threshold``,
``eval.tracker.keep_threshold``).

A val split of two synthetic sequences has a handful of crossings, so a tracker setting is better
judged on more of them: ``--seeds choosing`` scores the checkpoint on the val splits of the benchmark's
choosing seeds (``tools.seed_splits``, the same splits as ``tools.benchmark``) and prints the mean over
the splits; ``--tracker max_lost=10 height_scale=0`` sets any other ``eval.tracker`` option.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scene_model.data.datamodule import EvalSplit
from scene_model.errors import ConfigError
from scene_model.outputs import writable_dir
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.trained import load_trained
from scene_model.tools.cli import ToolParser, tool_main
from scene_model.tools.compose import use_data_on_disk
from scene_model.tools.seed_splits import SEEDS_HELP, seed_list, seed_splits
from scene_model.tracking.options import TrackerOptions, parse_assignments
from scene_model.tracking.predictions import WindowPrediction
from scene_model.tracking.scoring import mean_metrics, score_tracks
from scene_model.tracking.sequence_tracker import SequenceTracker
from scene_model.tracking.trackeval_metrics import HEADLINE
from scene_model.training.lit_module import SceneModelLightningModule


@dataclass
class SweepRow:
    start_threshold: float
    keep_threshold: float
    metrics: dict[str, float]


def sweep_thresholds(
    track: Callable[[SequenceTracker], dict], split: EvalSplit, pairs: Sequence[tuple[float, float]], options: TrackerOptions,
) -> list[SweepRow]:
    """Track ``split`` with every (start, keep) pair (``track(tracker)`` -> {sequence: rows}) and score each."""
    rows = []
    for start, keep in pairs:
        results = track(SequenceTracker(options.replace(start_threshold=start, keep_threshold=keep)))
        rows.append(SweepRow(start, keep, score_tracks(results, split).combined))
    return rows


def split_tracking(module: SceneModelLightningModule, datamodule: Any, split: EvalSplit) -> Callable[[SequenceTracker], dict]:
    """How a tracker tracks ``split``: a model whose association carries queries is run for each tracker
    (its identities depend on the tracker's choices); otherwise the model runs once and each tracker
    links the same window predictions."""
    if module.association.carries:
        return lambda tracker: module.track_split(datamodule, split, tracker)
    windows: list[WindowPrediction] = []
    module.track_split(datamodule, split, SequenceTracker(), observe=lambda batch, found: windows.extend(found))
    return lambda tracker: tracker.link(windows, list(split.lengths), module.association)


def threshold_pairs(starts: Sequence[float], keeps: Sequence[float]) -> list[tuple[float, float]]:
    """Every (start, keep) with keep <= start, highest start first."""
    return [(s, k) for s, k in itertools.product(sorted(starts, reverse=True), sorted(keeps, reverse=True)) if k <= s]


def mean_rows(per_split: Sequence[Sequence[SweepRow]]) -> list[SweepRow]:
    """The rows of several splits (same pairs, same order) -> one row per pair, each metric averaged
    over the splits (the mean of per-split scores, as when comparing settings over data sets)."""
    return [
        SweepRow(same_pair[0].start_threshold, same_pair[0].keep_threshold, mean_metrics([r.metrics for r in same_pair]))
        for same_pair in zip(*per_split, strict=True)
    ]


SWEPT = {"start_threshold": "--start", "keep_threshold": "--keep", "nms_iou": "--nms-iou"}


def tracker_overrides(pairs: Sequence[str]) -> dict:
    """``--tracker KEY=VALUE`` strings -> {option: value} (``options.parse_assignments``); the swept
    options are refused by name."""
    for pair in pairs:
        key = pair.partition("=")[0]
        if key in SWEPT:
            raise ConfigError(f"--tracker {key}: set it with {SWEPT[key]}")
    try:
        return parse_assignments(list(pairs))
    except ConfigError as err:
        raise ConfigError(f"--tracker {err}") from None


@tool_main
def main(argv: list[str] | None = None) -> list[SweepRow]:
    parser = ToolParser(prog="python -m scene_model.tools.threshold_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, metavar="CKPT", help="a checkpoint written by train.py (its config is inside)")
    parser.add_argument("--split", default="val", help="a split with ground truth")
    parser.add_argument("--root", default=None, help="data root (default: data.root of the checkpoint's config)")
    parser.add_argument("--seeds", nargs="+", default=None, metavar="SEED",
                        help=f"score on the val splits of these generator seeds ({SEEDS_HELP}; under --data-dir) and average")
    parser.add_output("--data-dir", folder=True, default=None, help="where the seeds' val splits are kept (with --seeds; default: data/benchmark)")
    parser.add_argument("--start", type=float, nargs="+", default=[0.5, 0.4, 0.3, 0.2, 0.1])
    parser.add_argument("--keep", type=float, nargs="+", default=[0.3, 0.2, 0.1, 0.05])
    parser.add_argument("--nms-iou", type=float, default=None, help="window NMS of the tracker (default: the checkpoint's eval.tracker.nms_iou)")
    parser.add_argument("--tracker", nargs="+", default=[], metavar="KEY=VALUE", help="other eval.tracker options, e.g. max_lost=10 height_scale=0")
    parser.add_device()
    args = parser.parse_args(argv)
    if args.root is not None and args.seeds:
        parser.error("--root and --seeds exclude each other")
    if args.split != "val" and args.seeds:
        parser.error(f"--split {args.split} and --seeds exclude each other (the seeds' splits are val splits)")
    if args.data_dir is not None and not args.seeds:
        parser.error("--data-dir is where the --seeds' val splits are kept: give --seeds with it")
    overrides = tracker_overrides(args.tracker)
    seeds = seed_list(args.seeds) if args.seeds else []
    data_dir = writable_dir(args.data_dir or Path("data/benchmark"), "--data-dir") if seeds else None  # before any work

    run = load_trained(args.checkpoint, args.device, "CKPT")
    cfg = run.cfg
    # A value out of range stops here, before the model runs.
    options = TrackerOptions.from_mapping(cfg.eval.tracker).replace(nms_iou=args.nms_iou, **overrides)
    pairs = threshold_pairs(args.start, args.keep)
    roots = [Path(root) for root in seed_splits(seeds, data_dir).values()] if seeds else [args.root]
    per_split = []
    for root in roots:
        if root is not None:
            use_data_on_disk(cfg, root)
        datamodule = ConfigLoader(cfg).build_datamodule()
        if root is None:
            datamodule.prepare_data()  # the checkpoint's own synthetic data set, made if it is missing
        split = datamodule.eval_split("val" if seeds else args.split)
        per_split.append(sweep_thresholds(split_tracking(run.module, datamodule, split), split, pairs, options))
    rows = mean_rows(per_split)
    several = len(per_split) > 1
    named = " ".join(map(str, seeds))
    if several:
        print(f"mean over the val splits of generator seeds {named}:")
    print(f"{'start':>6}{'keep':>6}" + "".join(f"{c:>8}" for c in HEADLINE) + (f"  HOTA of seeds {named}" if several else ""))
    for index, row in enumerate(rows):
        cells = (f"{row.metrics[c]:8.{1 if several else 0}f}" if c == "IDSW" else f"{row.metrics[c]:8.1f}" for c in HEADLINE)
        splits = "  " + " ".join(f"{rows_of[index].metrics['HOTA']:.1f}" for rows_of in per_split) if several else ""
        print(f"{row.start_threshold:6.2f}{row.keep_threshold:6.2f}" + "".join(cells) + splits)
    best = max(rows, key=lambda r: r.metrics["HOTA"])
    nms = f" eval.tracker.nms_iou={args.nms_iou}" if args.nms_iou is not None else ""
    others = "".join(f" eval.tracker.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in overrides.items())
    print(f"best HOTA {best.metrics['HOTA']:.1f}: eval.tracker.start_threshold={best.start_threshold} "
          f"eval.tracker.keep_threshold={best.keep_threshold}{nms}{others}")
    return rows


if __name__ == "__main__":
    main()

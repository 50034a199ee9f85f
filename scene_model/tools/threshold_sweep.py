"""Score a trained checkpoint's tracking over a grid of ``eval.tracker`` score thresholds.

The model runs once over the split's windows; every (start, keep) pair is then linked, written and
scored with TrackEval from those predictions. A model's scores (existence probabilities) depend
on how long and with which losses it trained, so the thresholds that suit it are found on val:

    python -m scene_model.tools.threshold_sweep outputs/runs/.../checkpoints/last.ckpt \\
        --start 0.5 0.3 0.2 0.1 --keep 0.3 0.1 0.05

The best pair is printed as the overrides to pass to ``train.py`` (``eval.tracker.start_threshold``,
``eval.tracker.keep_threshold``).

A val split of two synthetic sequences has a handful of crossings, so a tracker setting is better
judged on more of them: ``--synthetic-seeds 2 3 4 5`` scores a checkpoint trained on the synthetic
data on the val splits of those generator seeds (generated on first use beside its data set, as
``<data.root>_seed<N>``) and prints the mean over the splits; ``--tracker max_lost=10 height_scale=0``
sets any other ``eval.tracker`` option.
"""

from __future__ import annotations

import copy
import itertools
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scene_model.data.datamodule import EvalSplit
from scene_model.errors import ConfigError
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.trained import load_trained
from scene_model.tools.cli import ToolParser, tool_main
from scene_model.tools.compose import use_data_on_disk
from scene_model.tracking.mot_results import write_results
from scene_model.tracking.options import TrackerOptions, parse_assignments
from scene_model.tracking.predictions import WindowPrediction
from scene_model.tracking.sequence_tracker import SequenceTracker
from scene_model.tracking.trackeval_metrics import HEADLINE, evaluate_mot
from scene_model.training.lit_module import SceneModelLightningModule


@dataclass
class SweepRow:
    start_threshold: float
    keep_threshold: float
    metrics: dict[str, float]


def sweep_thresholds(
    track: Callable[[SequenceTracker], dict],
    sequences: dict[str, int],
    gt_dir: Path,
    pairs: Sequence[tuple[float, float]],
    options: TrackerOptions,
) -> list[SweepRow]:
    """Track with every (start, keep) pair (``track(tracker)`` -> {sequence: rows}) and score each
    against ``gt_dir``. ``sequences``: {name: length} of the split."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for start, keep in pairs:
            results = track(SequenceTracker(options.replace(start_threshold=start, keep_threshold=keep)))
            results_dir = write_results(Path(scratch) / f"{start}_{keep}", results)
            rows.append(SweepRow(start, keep, evaluate_mot(gt_dir, results_dir, sequences=sequences).combined))
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
    rows = []
    for same_pair in zip(*per_split, strict=True):
        keys = same_pair[0].metrics.keys()
        metrics = {k: sum(r.metrics[k] for r in same_pair) / len(same_pair) for k in keys}
        rows.append(SweepRow(same_pair[0].start_threshold, same_pair[0].keep_threshold, metrics))
    return rows


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


def split_configs(cfg, seeds: Sequence[int] | None) -> list:
    """The configs whose splits are scored: the checkpoint's, or one per synthetic generator seed, its data
    set ``<data.root>_seed<N>`` (generated on first use)."""
    if not seeds:
        return [cfg]
    if cfg.data.get("synthetic") is None:
        raise ConfigError("--synthetic-seeds: the checkpoint was not trained on the synthetic data (data.synthetic is null)")
    configs = []
    for seed in dict.fromkeys(seeds):  # each seed once, in the order given
        variant = copy.deepcopy(cfg)
        variant.data.synthetic.seed = seed
        root = Path(variant.data.root)
        variant.data.root = str(root.with_name(f"{root.name}_seed{seed}"))
        variant.data.extra_train_sets = 0  # scored on its val split: its extra train sets are never read
        configs.append(variant)
    return configs


@tool_main
def main(argv: list[str] | None = None) -> list[SweepRow]:
    parser = ToolParser(prog="python -m scene_model.tools.threshold_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, metavar="CKPT", help="a checkpoint written by train.py (its config is inside)")
    parser.add_argument("--split", default="val", help="a split with ground truth")
    parser.add_argument("--root", default=None, help="data root (default: data.root of the checkpoint's config)")
    parser.add_argument("--synthetic-seeds", type=int, nargs="+", default=None, metavar="N",
                        help="score on the --split of these synthetic generator seeds (data sets <data.root>_seed<N>, made on first use) and average")
    parser.add_argument("--start", type=float, nargs="+", default=[0.5, 0.4, 0.3, 0.2, 0.1])
    parser.add_argument("--keep", type=float, nargs="+", default=[0.3, 0.2, 0.1, 0.05])
    parser.add_argument("--nms-iou", type=float, default=None, help="window NMS of the tracker (default: the checkpoint's eval.tracker.nms_iou)")
    parser.add_argument("--tracker", nargs="+", default=[], metavar="KEY=VALUE", help="other eval.tracker options, e.g. max_lost=10 height_scale=0")
    parser.add_device()
    args = parser.parse_args(argv)
    if args.root is not None and args.synthetic_seeds:
        parser.error("--root and --synthetic-seeds exclude each other")
    overrides = tracker_overrides(args.tracker)

    run = load_trained(args.checkpoint, args.device, "CKPT")
    cfg = run.cfg
    if args.root is not None:
        use_data_on_disk(cfg, args.root)
    # A value out of range stops here, before the model runs.
    options = TrackerOptions.from_mapping(cfg.eval.tracker).replace(nms_iou=args.nms_iou, **overrides)
    pairs = threshold_pairs(args.start, args.keep)
    per_split = []
    for split_cfg in split_configs(cfg, args.synthetic_seeds):
        datamodule = ConfigLoader(split_cfg).build_datamodule()
        datamodule.prepare_data()  # generates the synthetic data set if the config names one and it is missing
        split = datamodule.eval_split(args.split)
        per_split.append(sweep_thresholds(split_tracking(run.module, datamodule, split), split.lengths, split.directory, pairs, options))
    rows = mean_rows(per_split)
    several = len(per_split) > 1
    seeds = " ".join(map(str, dict.fromkeys(args.synthetic_seeds or [])))
    if several:
        print(f"mean over the {args.split} splits of generator seeds {seeds}:")
    print(f"{'start':>6}{'keep':>6}" + "".join(f"{c:>8}" for c in HEADLINE) + (f"  HOTA of seeds {seeds}" if several else ""))
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

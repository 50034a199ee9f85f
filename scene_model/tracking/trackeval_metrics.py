"""HOTA, CLEAR and Identity metrics with the ``trackeval`` package, configured as DanceTrack evaluates.

DanceTrack's evaluation is TrackEval's ``run_mot_challenge.py`` with ``MotChallenge2DBox``, the
split's seqmap, ``SKIP_SPLIT_FOL`` (the ground-truth folder is the split folder itself), no
preprocessing and the metrics HOTA, CLEAR and Identity. ``evaluate_mot`` runs exactly that through
TrackEval's Python API, without its console output or the files it writes by default.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trackeval

from scene_model.data.mot_format import list_sequences, read_seqinfo, read_seqmap
from scene_model.errors import DataFormatError
from scene_model.tracking.mot_results import read_results

# name -> (TrackEval metric, field, scale): percentages as the DanceTrack leaderboard prints them.
METRIC_FIELDS = {
    "HOTA": ("HOTA", "HOTA", 100.0),
    "DetA": ("HOTA", "DetA", 100.0),
    "AssA": ("HOTA", "AssA", 100.0),
    "DetRe": ("HOTA", "DetRe", 100.0),
    "DetPr": ("HOTA", "DetPr", 100.0),
    "AssRe": ("HOTA", "AssRe", 100.0),
    "AssPr": ("HOTA", "AssPr", 100.0),
    "LocA": ("HOTA", "LocA", 100.0),
    "MOTA": ("CLEAR", "MOTA", 100.0),
    "MOTP": ("CLEAR", "MOTP", 100.0),
    "IDF1": ("Identity", "IDF1", 100.0),
    "IDP": ("Identity", "IDP", 100.0),
    "IDR": ("Identity", "IDR", 100.0),
    "IDSW": ("CLEAR", "IDSW", 1.0),
    "FP": ("CLEAR", "CLR_FP", 1.0),
    "FN": ("CLEAR", "CLR_FN", 1.0),
    "Frag": ("CLEAR", "Frag", 1.0),
    "MT": ("CLEAR", "MT", 1.0),
    "ML": ("CLEAR", "ML", 1.0),
    "Dets": ("Count", "Dets", 1.0),
    "GT_Dets": ("Count", "GT_Dets", 1.0),
    "IDs": ("Count", "IDs", 1.0),
    "GT_IDs": ("Count", "GT_IDs", 1.0),
}
# What a training run logs (val/track/<name>) and the table shows first.
HEADLINE = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "LocA", "MOTA", "IDF1", "IDSW")
COMBINED = "COMBINED"


@dataclass
class MotEvaluation:
    """Metrics per sequence and over all sequences (TrackEval's combination, not a mean of sequences)."""

    sequences: dict[str, dict[str, float]]
    combined: dict[str, float]
    diagnostics: dict | None = None  # written with the metrics (JSON) when set: see tracking.diagnostics

    def rows(self) -> list[tuple[str, dict[str, float]]]:
        return [*self.sequences.items(), (COMBINED, self.combined)]

    def table(self, columns: Sequence[str] = HEADLINE) -> str:
        """A fixed-width text table, one line a sequence and a last line for all of them."""
        width = max([len(COMBINED)] + [len(name) for name in self.sequences])
        lines = [f"{'sequence':<{width}}" + "".join(f"{c:>9}" for c in columns)]
        for name, values in self.rows():
            cells = (f"{values[c]:9.0f}" if METRIC_FIELDS[c][2] == 1.0 else f"{values[c]:9.3f}" for c in columns)
            lines.append(f"{name:<{width}}" + "".join(cells))
        return "\n".join(lines)

    def write_csv(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sequence", *METRIC_FIELDS])
            for name, values in self.rows():
                writer.writerow([name, *(_plain(values[c]) for c in METRIC_FIELDS)])
        return path

    def write_json(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "sequences": {n: {k: _plain(v) for k, v in m.items()} for n, m in self.sequences.items()},
            "combined": {k: _plain(v) for k, v in self.combined.items()},
        }
        if self.diagnostics is not None:
            payload["diagnostics"] = _finite(self.diagnostics)
        path.write_text(json.dumps(payload, indent=2) + "\n")
        return path


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 6)


def _finite(value):
    """``value`` (nested dicts and lists of numbers) with NaN and infinities as None (JSON has none)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float):
        return _plain(value) if math.isfinite(value) else None
    return value


def _summary(metric_results: dict) -> dict[str, float]:
    """TrackEval's nested result of one sequence (or the combination) -> {name: number}."""
    out = {}
    for name, (metric, field, scale) in METRIC_FIELDS.items():
        value = metric_results[metric][field]
        value = float(np.mean(value)) * scale  # HOTA fields are arrays over the 19 IoU thresholds
        out[name] = value if math.isfinite(value) else 0.0
    return out


def gt_sequences(gt_dir: Path, seqmap: Path | None = None) -> dict[str, int]:
    """Sequences to evaluate and their lengths: from ``seqmap``, else ``<gt_dir>_seqmap.txt`` (the
    DanceTrack layout: ``val_seqmap.txt`` next to ``val/``), else every sequence folder of ``gt_dir``."""
    gt_dir = Path(gt_dir)
    if seqmap is not None:
        seqmap = Path(seqmap)
        if not seqmap.is_file():
            raise DataFormatError(f"seqmap {seqmap} does not exist")
        directories = [gt_dir / name for name in read_seqmap(seqmap)]
        if not directories:
            raise DataFormatError(f"seqmap {seqmap} names no sequence")
    else:
        directories = list_sequences(gt_dir.parent, gt_dir.name)
    lengths = {}
    for directory in directories:
        info = read_seqinfo(directory)
        if not info.gt_path.is_file():
            raise DataFormatError(f"missing ground truth {info.gt_path} (frame,id,left,top,width,height,mark,class,visibility)")
        lengths[directory.name] = info.length
    return lengths


def evaluate_mot(
    gt_dir: Path,
    results_dir: Path,
    seqmap: Path | None = None,
    sequences: dict[str, int] | None = None,
    do_preproc: bool = False,
    benchmark: str = "DanceTrack",
) -> MotEvaluation:
    """Score ``results_dir/<sequence>.txt`` against ``gt_dir/<sequence>/gt/gt.txt`` with TrackEval.

    ``sequences`` ({name: length}) defaults to ``gt_sequences(gt_dir, seqmap)``. ``do_preproc``
    switches on TrackEval's MOT17 preprocessing (distractor classes, zero-marked boxes), which
    DanceTrack does not use. Result files are checked first, so a bad line is reported with its
    file and line number.
    """
    gt_dir, results_dir = Path(gt_dir), Path(results_dir)
    sequences = dict(sequences) if sequences is not None else gt_sequences(gt_dir, seqmap)
    if not results_dir.is_dir():
        raise DataFormatError(f"results folder {results_dir} does not exist")
    for name, length in sequences.items():
        read_results(results_dir / f"{name}.txt", length)
    dataset_config = {
        "GT_FOLDER": str(gt_dir),
        "TRACKERS_FOLDER": str(results_dir.parent),
        "TRACKERS_TO_EVAL": [results_dir.name],
        "TRACKER_SUB_FOLDER": "",
        "OUTPUT_FOLDER": str(results_dir.parent),
        "OUTPUT_SUB_FOLDER": "",
        "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": sequences,
        "BENCHMARK": benchmark,
        "SPLIT_TO_EVAL": results_dir.name,
        "DO_PREPROC": do_preproc,
        "PRINT_CONFIG": False,
    }
    eval_config = {
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "TIME_PROGRESS": False,
        "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False,
        "LOG_ON_ERROR": None,
        "BREAK_ON_ERROR": True,
    }
    metric_config = {"THRESHOLD": 0.5, "PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(metric_config), trackeval.metrics.Identity(metric_config)]
    console = io.StringIO()
    try:
        with contextlib.redirect_stdout(console):
            dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
            results, _ = trackeval.Evaluator(eval_config).evaluate([dataset], metrics)
    except trackeval.utils.TrackEvalException as err:
        raise DataFormatError(f"TrackEval cannot score {results_dir} against {gt_dir}: {err}") from None
    per_sequence = results["MotChallenge2DBox"][results_dir.name]
    return MotEvaluation(
        sequences={name: _summary(per_sequence[name]["pedestrian"]) for name in sequences},
        combined=_summary(per_sequence["COMBINED_SEQ"]["pedestrian"]),
    )

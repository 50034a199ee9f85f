"""Score MOTChallenge result files against ground truth, as the DanceTrack benchmark does.

    python -m scene_model.tools.evaluate data/DanceTrack/val outputs/runs/.../tracking/val

GT_DIR is a split folder of the MOTChallenge/DanceTrack layout (``<sequence>/seqinfo.ini`` and
``<sequence>/gt/gt.txt``); its seqmap is ``--seqmap``, else ``<GT_DIR>_seqmap.txt``, else every
sequence folder. RESULTS_DIR holds one ``<sequence>.txt`` a sequence. The table is printed and
written as ``<RESULTS_DIR>_metrics.csv`` and ``.json`` (or where ``--csv`` / ``--json`` say).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scene_model.outputs import writable_file, write_atomically
from scene_model.tools.cli import ToolParser, tool_main
from scene_model.tracking.trackeval_metrics import HEADLINE, METRIC_FIELDS, MotEvaluation, evaluate_mot


def metrics_paths(results_dir: Path) -> tuple[Path, Path]:
    """Where the metrics of a results folder go by default: ``<results_dir>_metrics.{csv,json}``."""
    results_dir = Path(results_dir)
    stem = results_dir.parent / f"{results_dir.name}_metrics"
    return stem.with_suffix(".csv"), stem.with_suffix(".json")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ToolParser(
        prog="python -m scene_model.tools.evaluate",
        description=__doc__.split("\n\n")[0],
        epilog="Metrics: " + ", ".join(METRIC_FIELDS),
    )
    parser.add_argument("gt_dir", type=Path, help="ground-truth split folder, e.g. DanceTrack/val")
    parser.add_argument("results_dir", type=Path, help="folder of <sequence>.txt result files")
    parser.add_argument("--seqmap", type=Path, default=None, help="seqmap file (header 'name', one sequence a line)")
    parser.add_argument("--preproc", action="store_true", help="TrackEval's MOT17 preprocessing (off for DanceTrack)")
    parser.add_argument("--csv", type=Path, default=None, help="CSV output (default <results_dir>_metrics.csv)")
    parser.add_argument("--json", type=Path, default=None, help="JSON output (default <results_dir>_metrics.json)")
    parser.add_argument("--columns", nargs="+", default=list(HEADLINE), choices=list(METRIC_FIELDS),
                        metavar="METRIC", help=f"columns of the printed table (default: {' '.join(HEADLINE)})")
    return parser.parse_args(argv)


@tool_main
def main(argv: list[str] | None = None) -> MotEvaluation:
    args = parse_args(argv)
    default_csv, default_json = metrics_paths(args.results_dir)
    csv_path = writable_file(args.csv or default_csv, "--csv")  # before the scoring
    json_path = writable_file(args.json or default_json, "--json")
    evaluation = evaluate_mot(args.gt_dir, args.results_dir, seqmap=args.seqmap, do_preproc=args.preproc)
    write_atomically(csv_path, evaluation.write_csv, "--csv")
    write_atomically(json_path, evaluation.write_json, "--json")
    print(evaluation.table(args.columns))
    print(f"\nwritten: {csv_path}, {json_path}")
    return evaluation


if __name__ == "__main__":
    main()

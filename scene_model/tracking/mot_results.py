"""MOTChallenge result files: one ``<sequence>.txt`` a sequence, the format DanceTrack's server takes.

    frame,id,left,top,width,height,score,-1,-1,-1      (1-based frames, pixels of the original image)

A results folder holds only these files; ``zip_results`` packs them at the root of a zip archive,
which is how the DanceTrack (and MOTChallenge) evaluation servers want a submission.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from scene_model.data.mot_format import check_unique_ids, parse_mot_lines
from scene_model.errors import DataFormatError
from scene_model.outputs import write_atomically, writing

RESULT_COLUMNS = ("frame", "id", "left", "top", "width", "height", "score")
FORMAT = "frame,id,left,top,width,height,score[,-1,-1,-1]"
FORMAT_HELP = f"expected MOTChallenge rows {FORMAT}"


def empty_rows() -> np.ndarray:
    """Rows of a sequence without a single box: float64[0, 7]."""
    return np.zeros((0, len(RESULT_COLUMNS)), dtype=np.float64)


def format_rows(rows: np.ndarray) -> str:
    """rows float[N, 7] (frame, id, left, top, width, height, score) -> file text, sorted by frame then id."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(RESULT_COLUMNS))
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    return "".join(
        f"{int(f)},{int(i)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n" for f, i, x, y, w, h, s in rows
    )


def write_results(directory: Path, results: Mapping[str, np.ndarray]) -> Path:
    """Write ``<directory>/<sequence>.txt`` for every sequence (empty files included).

    The folder is written next to its final place and swapped in only when complete, so a crash
    leaves the previous results intact.
    """
    directory = Path(directory)
    with writing(directory, "results"):
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            for name, rows in results.items():
                (staging / f"{name}.txt").write_text(format_rows(rows))
            if directory.exists():
                retired = staging.with_name(staging.name + "-old")
                os.rename(directory, retired)
                os.rename(staging, directory)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.rename(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_results(path: Path, num_frames: int | None = None) -> np.ndarray:
    """Read and check one result file -> float64[N, 7]; every problem names the file and line.

    Checked: at least 7 numeric columns, integer frames in 1..``num_frames``, integer ids, sizes not
    negative, and no id twice in one frame (TrackEval would reject all of these less clearly).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"missing result file {path}; {FORMAT_HELP}, one <sequence>.txt a sequence")
    rows, line_numbers = parse_mot_lines(path, len(RESULT_COLUMNS), len(RESULT_COLUMNS), FORMAT, num_frames)
    bad_id = rows[:, 1] != np.floor(rows[:, 1])
    if bad_id.any():
        raise DataFormatError(f"{path}:{line_numbers[bad_id][0]}: id must be an integer, found {float(rows[bad_id][0, 1])}")
    negative = (rows[:, 4] < 0) | (rows[:, 5] < 0)
    if negative.any():
        raise DataFormatError(f"{path}:{line_numbers[negative][0]}: negative box size (width, height): {rows[negative][0, 4:6].tolist()}")
    check_unique_ids(path, rows[:, 0], rows[:, 1], line_numbers)
    return rows


def zip_results(directory: Path, archive: Path | None = None) -> Path:
    """Pack the ``*.txt`` files of ``directory`` at the root of ``archive`` (default ``<directory>.zip``)."""
    directory = Path(directory)
    archive = Path(archive) if archive is not None else directory.with_suffix(".zip")

    def pack(partial: Path) -> None:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(directory.glob("*.txt")):
                bundle.write(path, arcname=path.name)

    return write_atomically(archive, pack, "results")

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

from scene_model.errors import DataFormatError
from scene_model.outputs import write_atomically, writing

RESULT_COLUMNS = ("frame", "id", "left", "top", "width", "height", "score")
FORMAT_HELP = "expected MOTChallenge rows frame,id,left,top,width,height,score[,-1,-1,-1]"


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
    rows, seen = [], {}
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            fields = text.replace(" ", "").split(",")
            where = f"{path}:{line_no}"
            if len(fields) < len(RESULT_COLUMNS):
                raise DataFormatError(f"{where}: {FORMAT_HELP}; found {len(fields)} columns: {text!r}")
            try:
                values = [float(v) for v in fields[: len(RESULT_COLUMNS)]]
            except ValueError:
                raise DataFormatError(f"{where}: a column is not a number: {text!r}") from None
            frame, track_id, _, _, width, height, _ = values
            if frame != int(frame) or frame < 1 or (num_frames is not None and frame > num_frames):
                limit = f"1..{num_frames}" if num_frames is not None else ">= 1"
                raise DataFormatError(f"{where}: frame must be an integer in {limit}, found {fields[0]!r}")
            if track_id != int(track_id):
                raise DataFormatError(f"{where}: id must be an integer, found {fields[1]!r}")
            if width < 0 or height < 0:
                raise DataFormatError(f"{where}: negative box size: {text!r}")
            key = (int(frame), int(track_id))
            if key in seen:
                raise DataFormatError(f"{where}: id {key[1]} appears twice in frame {key[0]} (first on line {seen[key]})")
            seen[key] = line_no
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(RESULT_COLUMNS))


def zip_results(directory: Path, archive: Path | None = None) -> Path:
    """Pack the ``*.txt`` files of ``directory`` at the root of ``archive`` (default ``<directory>.zip``)."""
    directory = Path(directory)
    archive = Path(archive) if archive is not None else directory.with_suffix(".zip")

    def pack(partial: Path) -> None:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(directory.glob("*.txt")):
                bundle.write(path, arcname=path.name)

    return write_atomically(archive, pack, "results")

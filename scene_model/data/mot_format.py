"""Reading the MOTChallenge layout that DanceTrack, MOT17 and SportsMOT share.

    root/<split>/<sequence>/seqinfo.ini     [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    root/<split>/<sequence>/img1/00000001.jpg ...
    root/<split>/<sequence>/gt/gt.txt       frame, id, left, top, width, height, mark, class, visibility
    root/<split>_seqmap.txt                 optional: a header line ``name``, then one sequence a line

The test split of DanceTrack has no gt/gt.txt.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scene_model.boxes import clip_xywh
from scene_model.errors import DataFormatError

EXPECTED_LAYOUT = (
    "expected the MOTChallenge/DanceTrack layout: <root>/<split>/<sequence>/seqinfo.ini, "
    "<root>/<split>/<sequence>/img1/00000001.jpg ..., <root>/<split>/<sequence>/gt/gt.txt "
    "(optional seqmap <root>/<split>_seqmap.txt)"
)
SEQINFO_KEYS = ("name", "imdir", "framerate", "seqlength", "imwidth", "imheight", "imext")
GT_COLUMNS = "frame,id,left,top,width,height[,mark,class,visibility]"
GT_NAMES = ("frame", "id", "left", "top", "width", "height", "mark", "class", "visibility")
GT_INTEGER_COLUMNS = (0, 1, 6, 7)  # frame, id, mark, class


@dataclass(frozen=True)
class SequenceInfo:
    """The [Sequence] section of one seqinfo.ini."""

    name: str
    directory: Path
    im_dir: str
    frame_rate: float
    length: int
    width: int
    height: int
    im_ext: str

    def frame_path(self, frame: int) -> Path:
        """Path of a 1-based frame number."""
        return self.directory / self.im_dir / f"{frame:08d}{self.im_ext}"

    @property
    def gt_path(self) -> Path:
        return self.directory / "gt" / "gt.txt"

    @property
    def seqinfo_path(self) -> Path:
        return self.directory / "seqinfo.ini"


@dataclass
class GroundTruth:
    """All boxes of one sequence as parallel numpy arrays (pixels, 1-based frames), sorted by frame."""

    frames: np.ndarray  # int32[M]
    track_ids: np.ndarray  # int64[M]
    boxes: np.ndarray  # float32[M, 4] left, top, width, height in pixels, clipped to the image
    classes: np.ndarray  # int32[M]
    visibility: np.ndarray  # float32[M]
    num_dropped: int = 0  # boxes of zero or negative size after clipping

    def __len__(self) -> int:
        return len(self.frames)


def read_seqinfo(seq_dir: Path) -> SequenceInfo:
    """Parse ``seq_dir/seqinfo.ini``; every missing or malformed key is named with the file."""
    path = Path(seq_dir) / "seqinfo.ini"
    require_file(path)
    parser = configparser.ConfigParser()
    try:
        parser.read(str(path))
    except configparser.Error as err:
        raise DataFormatError(ini_error(path, err)) from None
    if "Sequence" not in parser:
        raise DataFormatError(f"{path}: no [Sequence] section; {EXPECTED_LAYOUT}")
    section = parser["Sequence"]
    missing = [key for key in SEQINFO_KEYS if key not in section]
    if missing:
        raise DataFormatError(f"{path}: [Sequence] lacks {', '.join(missing)}")
    try:
        info = SequenceInfo(
            name=section["name"],
            directory=Path(seq_dir),
            im_dir=section["imdir"],
            frame_rate=float(section["framerate"]),
            length=int(section["seqlength"]),
            width=int(section["imwidth"]),
            height=int(section["imheight"]),
            im_ext=section["imext"],
        )
    except ValueError as err:
        raise DataFormatError(f"{path}: a number in [Sequence] does not parse ({err})") from None
    if info.length <= 0 or info.width <= 0 or info.height <= 0:
        raise DataFormatError(f"{path}: seqLength, imWidth and imHeight must be positive")
    return info


def ini_error(path: Path, err: configparser.Error) -> str:
    """One line for configparser's (several lines, the path as a repr): the file, the line and what is wrong."""
    lineno = getattr(err, "lineno", None)
    if isinstance(err, configparser.MissingSectionHeaderError):
        return f"{path}:{lineno}: {err.line.strip()!r} comes before any section header; expected [Sequence] first"
    if isinstance(err, configparser.DuplicateOptionError):
        return f"{path}:{lineno}: {err.option} appears twice in [{err.section}]"
    if isinstance(err, configparser.DuplicateSectionError):
        return f"{path}:{lineno}: [{err.section}] appears twice"
    if isinstance(err, configparser.ParsingError) and err.errors:
        lineno, line = err.errors[0]  # the line as its repr
        with contextlib.suppress(ValueError, SyntaxError):
            line = ast.literal_eval(line)
        return f"{path}:{lineno}: not a 'key=value' line: {str(line).strip()!r}"
    return f"{path}: not a valid ini file ({' '.join(str(err).split())})"


def require_file(path: Path) -> None:
    """A missing file, or a directory (or device ...) where the layout has a file, named as such."""
    if path.is_file():
        return
    if path.is_dir():
        raise DataFormatError(f"{path} is a directory, expected a file; {EXPECTED_LAYOUT}")
    if path.exists():
        raise DataFormatError(f"{path} is not a regular file; {EXPECTED_LAYOUT}")
    raise DataFormatError(f"missing {path}; {EXPECTED_LAYOUT}")


def _check_gt_values(path: Path, line_no: int, fields: list[str], values: list[float]) -> None:
    """Every number finite; frame >= 1; frame, id, mark and class integers."""
    for column, value in enumerate(values):
        if not math.isfinite(value):
            raise DataFormatError(f"{path}:{line_no}: {GT_NAMES[column]} must be a finite number, found {fields[column]!r}")
    if not values[0] >= 1 or values[0] != int(values[0]):
        raise DataFormatError(f"{path}:{line_no}: frame must be a 1-based integer, found {fields[0]!r}")
    for column in GT_INTEGER_COLUMNS[1:]:
        if values[column] != int(values[column]):
            raise DataFormatError(f"{path}:{line_no}: {GT_NAMES[column]} must be an integer, found {fields[column]!r}")


def _valid_table(table: np.ndarray) -> bool:
    """Whether every row passes ``_check_gt_values`` (the fast path's test; the line parser names the first bad one)."""
    integers = table[:, list(GT_INTEGER_COLUMNS)]
    return bool(np.isfinite(table).all() and (table[:, 0] >= 1).all() and (integers == np.floor(integers)).all())


def parse_mot_lines(
    path: Path,
    columns: int,
    required: int,
    columns_help: str,
    num_frames: int | None = None,
    check: Callable[[Path, int, list[str], list[float]], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Parse a MOTChallenge text file (gt.txt or a result file) line by line into (float64[M, columns],
    1-based line numbers int64[M]); optional columns missing from a line are 1. The exact path: a
    malformed line raises with the file and its line number (fewer than ``required`` columns, a
    column that is not a number, a frame that is not an integer in 1..``num_frames``, or what
    ``check(path, line_no, fields, values)`` refuses)."""
    rows, line_numbers = [], []
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.replace(" ", "").split(",")
            where = f"{path}:{line_no}"
            if len(fields) < required:
                raise DataFormatError(
                    f"{where}: expected at least {required} comma-separated columns ({columns_help}), "
                    f"found {len(fields)}: {line!r}"
                )
            fields = (fields + ["1"] * columns)[:columns]
            try:
                values = [float(value) for value in fields]
            except ValueError:
                raise DataFormatError(f"{where}: a column is not a number: {line!r}") from None
            frame = values[0]
            if not frame >= 1 or frame != int(frame) or (num_frames is not None and frame > num_frames):
                limit = f" in 1..{num_frames}" if num_frames is not None else ""
                raise DataFormatError(f"{where}: frame must be a 1-based integer{limit}, found {fields[0]!r}")
            if check is not None:
                check(path, line_no, fields, values)
            rows.append(values)
            line_numbers.append(line_no)
    return np.asarray(rows, dtype=np.float64).reshape(-1, columns), np.asarray(line_numbers, dtype=np.int64)


def check_unique_ids(path: Path, frames: np.ndarray, ids: np.ndarray, line_numbers: np.ndarray) -> None:
    """Raise, naming both lines, at the first (frame, id) pair that appears twice."""
    seen: dict[tuple[int, int], int] = {}
    for frame, track, line_no in zip(frames.astype(np.int64).tolist(), ids.astype(np.int64).tolist(), line_numbers.tolist(), strict=True):
        if (frame, track) in seen:
            raise DataFormatError(
                f"{path}:{line_no}: track id {track} appears twice in frame {frame} (first at line {seen[frame, track]})"
            )
        seen[frame, track] = line_no


def _parse_gt_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """gt.txt line by line: (float64[M, 9], line numbers); the slow path that names a bad line."""
    return parse_mot_lines(path, 9, 6, GT_COLUMNS, check=_check_gt_values)


def _parse_gt(path: Path) -> np.ndarray:
    """Parse gt.txt into float64[M, 9] with numpy's C reader, falling back to the line parser
    (which names the bad line) whenever the file is not a clean table of valid rows."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty file
            table = np.loadtxt(path, delimiter=",", ndmin=2, comments=None, dtype=np.float64)
    except ValueError:
        return _parse_gt_lines(path)[0]
    if table.size == 0:
        return np.zeros((0, 9))
    if table.shape[1] < 6:
        return _parse_gt_lines(path)[0]
    if table.shape[1] < 9:
        table = np.concatenate([table, np.ones((len(table), 9 - table.shape[1]))], axis=1)
    table = table[:, :9]
    return table if _valid_table(table) else _parse_gt_lines(path)[0]


def _kept_rows(table: np.ndarray, class_ids: tuple[int, ...] | None) -> np.ndarray:
    """Rows to train on: mark != 0 and, when given, one of ``class_ids``."""
    keep = table[:, 6] != 0
    if class_ids is not None:
        keep &= np.isin(table[:, 7].astype(np.int64), np.asarray(class_ids, dtype=np.int64))
    return keep


def _has_duplicate_ids(table: np.ndarray) -> bool:
    """Whether a (frame, id) pair appears twice."""
    if len(table) < 2:
        return False
    ids = table[:, 1].astype(np.int64)
    keys = table[:, 0].astype(np.int64) * (int(ids.max() - ids.min()) + 1) + (ids - ids.min())
    return len(np.unique(keys)) < len(keys)


def _raise_duplicate_id(path: Path, class_ids: tuple[int, ...] | None) -> None:
    """Name both lines of the first (frame, id) pair that appears twice among the kept rows."""
    rows, line_numbers = _parse_gt_lines(path)
    keep = _kept_rows(rows, class_ids)
    check_unique_ids(path, rows[keep, 0], rows[keep, 1], line_numbers[keep])


def read_gt(info: SequenceInfo, class_ids: tuple[int, ...] | None = None) -> GroundTruth:
    """Read gt.txt of a sequence: keep mark != 0 (and the given classes), clip to the image, drop and
    count boxes left with zero or negative size. Lines may come in any order; ids need not be contiguous."""
    path = info.gt_path
    require_file(path)
    table = _parse_gt(path)
    if (table[:, 0] > info.length).any():
        rows, line_numbers = _parse_gt_lines(path)  # the line of the first such frame
        first = int(np.flatnonzero(rows[:, 0] > info.length)[0])
        raise DataFormatError(
            f"{path}:{line_numbers[first]}: frame {int(rows[first, 0])} is beyond seqLength={info.length} of {info.seqinfo_path}"
        )
    table = table[_kept_rows(table, class_ids)]
    if _has_duplicate_ids(table):
        _raise_duplicate_id(path, class_ids)
    boxes = clip_xywh(torch.from_numpy(table[:, 2:6]), (info.height, info.width)).numpy()
    nonempty = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    table, boxes = table[nonempty], boxes[nonempty]
    order = np.argsort(table[:, 0], kind="stable")
    boxes, table = boxes[order], table[order]
    return GroundTruth(
        frames=table[:, 0].astype(np.int32),
        track_ids=table[:, 1].astype(np.int64),
        boxes=boxes.astype(np.float32),
        classes=table[:, 7].astype(np.int32),
        visibility=table[:, 8].astype(np.float32),
        num_dropped=int((~nonempty).sum()),
    )


def read_seqmap(path: Path) -> list[str]:
    """Sequence names of a seqmap file (a header line ``name``, then one name a line); a name listed
    twice is named with its line."""
    path = Path(path)
    names: list[str] = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        name = line.strip()
        if not name or (not names and line_no == 1 and name.lower() == "name"):
            continue
        if name in names:
            raise DataFormatError(f"{path}:{line_no}: sequence {name!r} is listed twice")
        names.append(name)
    return names


def list_sequences(root: Path, split: str) -> list[Path]:
    """Sequence directories of a split, in seqmap order when ``<root>/<split>_seqmap.txt`` exists,
    otherwise every directory of the split in name order."""
    root = Path(root)
    if not root.is_dir():
        found = "is a file, expected a directory" if root.exists() else "does not exist"
        raise DataFormatError(f"data root {root} {found}; {EXPECTED_LAYOUT}")
    split_dir = root / split
    if not split_dir.is_dir():
        found = "is a file, expected a directory" if split_dir.exists() else "does not exist"
        raise DataFormatError(f"split directory {split_dir} {found}; {EXPECTED_LAYOUT}")
    seqmap = root / f"{split}_seqmap.txt"
    if seqmap.is_file():
        names = read_seqmap(seqmap)
        unknown = [name for name in names if not (split_dir / name).is_dir()]
        if unknown:
            raise DataFormatError(f"{seqmap}: sequence(s) {', '.join(unknown)} not found in {split_dir}")
        if not names:
            raise DataFormatError(f"{seqmap} lists no sequence (a header line 'name', then one sequence a line)")
        return [split_dir / name for name in names]
    sequences = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not sequences:
        raise DataFormatError(f"split directory {split_dir} holds no sequence; {EXPECTED_LAYOUT}")
    return sequences

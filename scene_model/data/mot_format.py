"""Reading the MOTChallenge layout that DanceTrack, MOT17 and SportsMOT share.

    root/<split>/<sequence>/seqinfo.ini     [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    root/<split>/<sequence>/img1/00000001.jpg ...
    root/<split>/<sequence>/gt/gt.txt       frame, id, left, top, width, height, mark, class, visibility
    root/<split>_seqmap.txt                 optional: a header line ``name``, then one sequence a line
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scene_model.errors import DataFormatError

EXPECTED_LAYOUT = (
    "expected the MOTChallenge/DanceTrack layout: <root>/<split>/<sequence>/seqinfo.ini, "
    "<root>/<split>/<sequence>/img1/00000001.jpg ..., <root>/<split>/<sequence>/gt/gt.txt "
    "(optional seqmap <root>/<split>_seqmap.txt)"
)
SEQINFO_KEYS = ("name", "imdir", "framerate", "seqlength", "imwidth", "imheight", "imext")


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
    if not path.is_file():
        raise DataFormatError(f"missing {path}; {EXPECTED_LAYOUT}")
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error as err:
        raise DataFormatError(f"{path}: not a valid ini file ({err})") from None
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


def _parse_gt_lines(path: Path) -> np.ndarray:
    """Parse gt.txt into float64[M, 9]; a malformed line raises with its line number."""
    rows = []
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.replace(" ", "").split(",")
            if len(fields) < 6:
                raise DataFormatError(
                    f"{path}:{line_no}: expected at least 6 comma-separated columns "
                    f"(frame,id,left,top,width,height[,mark,class,visibility]), found {len(fields)}: {line!r}"
                )
            fields = (fields + ["1", "1", "1"])[:9]
            try:
                values = [float(value) for value in fields]
            except ValueError:
                raise DataFormatError(f"{path}:{line_no}: a column is not a number: {line!r}") from None
            if values[0] < 1 or values[0] != int(values[0]):
                raise DataFormatError(f"{path}:{line_no}: frame must be a 1-based integer, found {fields[0]!r}")
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 9)


def read_gt(info: SequenceInfo, class_ids: tuple[int, ...] | None = None) -> GroundTruth:
    """Read gt.txt of a sequence: keep mark != 0 (and the given classes), clip to the image, drop empty boxes."""
    path = info.gt_path
    if not path.is_file():
        raise DataFormatError(f"missing {path}; {EXPECTED_LAYOUT}")
    table = _parse_gt_lines(path)
    out_of_range = table[:, 0] > info.length
    if out_of_range.any():
        frame = int(table[out_of_range, 0][0])
        raise DataFormatError(f"{path}: frame {frame} is beyond seqLength={info.length} of {info.directory / 'seqinfo.ini'}")
    keep = table[:, 6] != 0
    if class_ids is not None:
        keep &= np.isin(table[:, 7].astype(np.int64), np.asarray(class_ids))
    table = table[keep]
    left = np.clip(table[:, 2], 0, info.width)
    top = np.clip(table[:, 3], 0, info.height)
    right = np.clip(table[:, 2] + table[:, 4], 0, info.width)
    bottom = np.clip(table[:, 3] + table[:, 5], 0, info.height)
    nonempty = (right > left) & (bottom > top)
    table, left, top, right, bottom = (a[nonempty] for a in (table, left, top, right, bottom))
    order = np.argsort(table[:, 0], kind="stable")
    boxes = np.stack([left, top, right - left, bottom - top], axis=1)[order]
    table = table[order]
    return GroundTruth(
        frames=table[:, 0].astype(np.int32),
        track_ids=table[:, 1].astype(np.int64),
        boxes=boxes.astype(np.float32),
        classes=table[:, 7].astype(np.int32),
        visibility=table[:, 8].astype(np.float32),
        num_dropped=int((~nonempty).sum()),
    )


def read_seqmap(path: Path) -> list[str]:
    """Sequence names of a seqmap file (a header line ``name``, then one name a line)."""
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if lines and lines[0].lower() == "name":
        lines = lines[1:]
    return lines


def list_sequences(root: Path, split: str) -> list[Path]:
    """Sequence directories of a split, in seqmap order when ``<root>/<split>_seqmap.txt`` exists."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"data root {root} does not exist; {EXPECTED_LAYOUT}")
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataFormatError(f"split directory {split_dir} does not exist; {EXPECTED_LAYOUT}")
    seqmap = root / f"{split}_seqmap.txt"
    if seqmap.is_file():
        names = read_seqmap(seqmap)
        unknown = [name for name in names if not (split_dir / name).is_dir()]
        if unknown:
            raise DataFormatError(f"{seqmap}: sequence(s) {', '.join(unknown)} not found in {split_dir}")
        return [split_dir / name for name in names]
    sequences = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not sequences:
        raise DataFormatError(f"split directory {split_dir} holds no sequence; {EXPECTED_LAYOUT}")
    return sequences

"""A synthetic data set in the exact DanceTrack layout, deterministic from a seed.

What makes DanceTrack hard is reproduced on a small scale: dancers of near-identical appearance,
non-linear motion (sums of sinusoids), crossings and occlusions (drawn back to front, visibility
measured from the drawn pixels), dancers entering and leaving the frame and coming back, 16:9 frames
of two sizes over a textured background. The same reader serves this and the real release.

    python -m scene_model.tools.synthetic --root data/synthetic_dancetrack --seed 0
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scene_model.errors import ConfigError, DataFormatError, OutputError

log = logging.getLogger(__name__)

SPEC_FILE = "synthetic.json"
SPLITS = ("train", "val", "test")
BLOCK = 4096  # a file takes whole blocks of the disk
TEXT_BYTES = 2 * BLOCK  # a sequence's seqinfo.ini and gt.txt


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the generated data set (the defaults: ``data.synthetic`` in
    conf/data/synthetic.yaml)."""

    num_train: int
    num_val: int
    num_test: int
    num_frames: int
    sizes: tuple[tuple[int, int], ...]  # (width, height) per sequence, in turn
    min_dancers: int
    max_dancers: int
    frame_rate: int
    jpeg_quality: int
    seed: int

    @classmethod
    def from_dict(cls, values: dict) -> SyntheticSpec:
        values = dict(values)
        if "sizes" in values:
            values["sizes"] = tuple(tuple(int(v) for v in size) for size in values["sizes"])
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"data.synthetic: unknown option(s) {', '.join(sorted(unknown))}")
        missing = set(cls.__dataclass_fields__) - set(values)
        if missing:
            raise ConfigError(f"data.synthetic: missing option(s) {', '.join(sorted(missing))}")
        return cls(**values)

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


@dataclass
class Dancer:
    """One dancer's trajectory parameters (in units of the frame's width and height)."""

    base: np.ndarray  # (x, y) centre of the dance, fraction of the frame
    amp: np.ndarray  # [2, 2] amplitudes of two sinusoids per axis
    freq: np.ndarray  # [2, 2] angular frequencies per frame
    phase: np.ndarray  # [2, 2]
    drift: np.ndarray  # (x, y) per frame
    scale: float  # body height, fraction of the frame height
    colour: tuple[int, int, int]
    arm_freq: float
    enter: int  # first frame present (0-based)
    leave: int  # last frame present (0-based, inclusive)

    def centre(self, t: int) -> np.ndarray:
        waves = self.amp * np.sin(self.freq * t + self.phase)
        return self.base + waves.sum(axis=1) + self.drift * t


def _make_dancers(rng: np.random.Generator, num_frames: int, count: int) -> list[Dancer]:
    costume = rng.integers(60, 200, size=3)
    dancers = []
    for i in range(count):
        leaves_frame = rng.random() < 0.35
        enter = int(rng.integers(0, num_frames // 3)) if rng.random() < 0.3 else 0
        leave = int(rng.integers(2 * num_frames // 3, num_frames)) if rng.random() < 0.3 else num_frames - 1
        dancers.append(
            Dancer(
                base=np.array([(i + 0.5) / count + rng.normal(0, 0.04), rng.uniform(0.45, 0.6)]),
                amp=np.array(
                    [
                        [rng.uniform(0.05, 0.22 if leaves_frame else 0.15), rng.uniform(0.0, 0.06)],
                        [rng.uniform(0.02, 0.08), rng.uniform(0.0, 0.03)],
                    ]
                ),
                freq=rng.uniform(0.03, 0.12, size=(2, 2)),
                phase=rng.uniform(0, 2 * math.pi, size=(2, 2)),
                drift=np.array([rng.normal(0, 0.0015), 0.0]),
                scale=rng.uniform(0.32, 0.45),
                colour=tuple(int(c) for c in np.clip(costume + rng.integers(-12, 13, size=3), 0, 255)),
                arm_freq=rng.uniform(0.15, 0.35),
                enter=enter,
                leave=max(leave, enter + 5),
            )
        )
    return dancers


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Low-frequency colour noise over a floor with stripes: texture the model must learn to ignore."""
    coarse = rng.integers(40, 170, size=(6, 10, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    fine = rng.integers(-25, 26, size=(height, width, 3))
    array = np.clip(np.asarray(image, dtype=np.int16) + fine, 0, 255).astype(np.uint8)
    floor = int(height * 0.62)
    stripe = max(2, width // 24)
    for x in range(0, width, 2 * stripe):
        array[floor:, x : x + stripe] = (array[floor:, x : x + stripe] * 0.8).astype(np.uint8)
    return Image.fromarray(array).filter(ImageFilter.GaussianBlur(0.6))


def _draw_dancer(draw: ImageDraw.ImageDraw, dancer: Dancer, t: int, width: int, height: int, fill) -> None:
    cx, cy = dancer.centre(t) * (width, height)
    body_h = dancer.scale * height
    body_w = body_h * 0.28
    head_r = body_h * 0.11
    swing = math.sin(dancer.arm_freq * t)
    top = cy - body_h / 2
    draw.ellipse([cx - head_r, top, cx + head_r, top + 2 * head_r], fill=fill)
    torso_top = top + 2 * head_r
    torso_bottom = cy + body_h * 0.12
    draw.ellipse([cx - body_w / 2, torso_top, cx + body_w / 2, torso_bottom], fill=fill)
    limb = max(2, int(body_w * 0.22))
    shoulder = torso_top + body_h * 0.06
    for side in (-1, 1):
        hand = (cx + side * body_w * (0.9 + 0.5 * swing * side), shoulder + body_h * 0.25 * (0.2 - swing * side))
        draw.line([(cx + side * body_w * 0.35, shoulder), hand], fill=fill, width=limb)
        foot = (cx + side * body_w * (0.35 + 0.25 * swing), cy + body_h / 2)
        draw.line([(cx + side * body_w * 0.2, torso_bottom - body_h * 0.04), foot], fill=fill, width=limb)


def _render_sequence(rng: np.random.Generator, spec: SyntheticSpec, width: int, height: int):
    """Yield (image, gt rows) per frame; gt rows are (id, left, top, width, height, visibility)."""
    count = int(rng.integers(spec.min_dancers, spec.max_dancers + 1))
    dancers = _make_dancers(rng, spec.num_frames, count)
    background = _background(rng, width, height)
    for t in range(spec.num_frames):
        active = [(i, d) for i, d in enumerate(dancers) if d.enter <= t <= d.leave]
        # Back to front: the dancer lower in the frame is nearer and drawn last.
        active.sort(key=lambda item: item[1].centre(t)[1] + item[1].scale / 2)
        frame = background.copy()
        draw = ImageDraw.Draw(frame)
        id_map = Image.new("L", (width, height), 0)
        id_draw = ImageDraw.Draw(id_map)
        full_masks = {}
        for slot, (i, dancer) in enumerate(active, start=1):
            shade = tuple(int(c * (0.9 + 0.1 * math.sin(0.05 * t + i))) for c in dancer.colour)
            _draw_dancer(draw, dancer, t, width, height, shade)
            _draw_dancer(id_draw, dancer, t, width, height, slot)
            alone = Image.new("1", (width, height), 0)
            _draw_dancer(ImageDraw.Draw(alone), dancer, t, width, height, 1)
            full_masks[slot] = np.asarray(alone)
        visible_counts = np.bincount(np.asarray(id_map).ravel(), minlength=len(active) + 1)
        rows = []
        for slot, (i, _dancer) in enumerate(active, start=1):
            mask = full_masks[slot]
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue  # entirely outside the frame
            left, top = xs.min(), ys.min()
            box_w, box_h = xs.max() - left + 1, ys.max() - top + 1
            visibility = visible_counts[slot] / max(1, len(xs))
            rows.append((i + 1, int(left), int(top), int(box_w), int(box_h), float(visibility)))
        noise = rng.normal(0, 3, size=(height, width, 3))
        array = np.clip(np.asarray(frame, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        yield Image.fromarray(array), rows


def _write_sequence(seq_dir: Path, name: str, spec: SyntheticSpec, rng: np.random.Generator, size, with_gt: bool):
    width, height = size
    (seq_dir / "img1").mkdir(parents=True)
    gt_lines = []
    for t, (image, rows) in enumerate(_render_sequence(rng, spec, width, height), start=1):
        image.save(seq_dir / "img1" / f"{t:08d}.jpg", quality=spec.jpeg_quality)
        gt_lines.extend(f"{t},{tid},{x},{y},{w},{h},1,1,{vis:.3f}" for tid, x, y, w, h, vis in rows)
    (seq_dir / "seqinfo.ini").write_text(
        "[Sequence]\n"
        f"name={name}\nimDir=img1\nframeRate={spec.frame_rate}\nseqLength={spec.num_frames}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n"
    )
    if with_gt:
        (seq_dir / "gt").mkdir()
        (seq_dir / "gt" / "gt.txt").write_text("\n".join(gt_lines) + "\n")


def _sequences(spec: SyntheticSpec, splits: Sequence[str]) -> Iterator[tuple[str, int, tuple[int, int]]]:
    """(split, index, (width, height)) of each sequence of ``splits``, numbered as in the whole data set
    (from 1, train then val then test): a sequence is drawn from the seed and its place in the set."""
    index = 0
    for split, count in zip(SPLITS, (spec.num_train, spec.num_val, spec.num_test), strict=True):
        for _ in range(count):
            index += 1
            if split in splits:
                yield split, index, spec.sizes[index % len(spec.sizes)]


def _record(spec: SyntheticSpec, splits: Sequence[str]) -> dict:
    """What ``synthetic.json`` keeps: the spec, and the splits present when they are not all three."""
    present = tuple(s for s in SPLITS if s in splits)
    return spec.to_json() if present == SPLITS else {**spec.to_json(), "splits": list(present)}


def generate(root: Path, spec: SyntheticSpec, splits: tuple[str, ...] = SPLITS) -> None:
    """Write the data set under ``root`` (which must not exist yet): the sequences of ``splits``, each
    the same as in the whole data set."""
    root = Path(root)
    names: dict[str, list[str]] = {split: [] for split in splits}
    for split, index, size in _sequences(spec, splits):
        name = f"synth{index:04d}"
        seq_rng = np.random.default_rng([spec.seed, index])
        _write_sequence(root / split / name, name, spec, seq_rng, size, with_gt=split != "test")
        names[split].append(name)
    for split in splits:
        (root / f"{split}_seqmap.txt").write_text("name\n" + "".join(f"{n}\n" for n in names[split]))
    (root / SPEC_FILE).write_text(json.dumps(_record(spec, splits), indent=2))


@functools.lru_cache(maxsize=32)
def _frame_bytes(spec: SyntheticSpec, size: tuple[int, int]) -> int:
    """The disk space of one frame of ``size`` at ``spec.jpeg_quality``: a frame rendered and encoded as the
    generator does (its noise and texture decide the size, not the seed), in whole blocks."""
    image, _rows = next(_render_sequence(np.random.default_rng(0), spec, *size))
    encoded = io.BytesIO()
    image.save(encoded, format="JPEG", quality=spec.jpeg_quality)
    return -(-len(encoded.getvalue()) // BLOCK) * BLOCK


def estimated_bytes(spec: SyntheticSpec, splits: Sequence[str] = SPLITS) -> int:
    """About what generating the sequences of ``splits`` writes to disk."""
    return _estimated_bytes(dataclasses.replace(spec, seed=0), tuple(splits))  # the seed changes no size


@functools.lru_cache(maxsize=32)
def _estimated_bytes(spec: SyntheticSpec, splits: tuple[str, ...]) -> int:
    return sum(spec.num_frames * _frame_bytes(spec, size) + TEXT_BYTES for _split, _index, size in _sequences(spec, splits))


@dataclass(frozen=True)
class SyntheticSet:
    """A data set to have on disk: at ``root``, from ``spec``, with (at least) the sequences of ``splits``."""

    root: Path
    spec: SyntheticSpec
    splits: tuple[str, ...] = SPLITS


def present_splits(root: Path, spec: SyntheticSpec) -> tuple[str, ...]:
    """The splits of the data set of ``spec`` at ``root`` (none when there is none yet); a data set of
    other options there, or anything else, is a DataFormatError."""
    spec_path = root / SPEC_FILE
    if spec_path.is_file():
        found = json.loads(spec_path.read_text())
        present = tuple(found.pop("splits", SPLITS))
        if found != spec.to_json():
            raise DataFormatError(
                f"{root} holds a synthetic data set generated with other options ({spec_path}); "
                "delete it or choose another data.root"
            )
        return present
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataFormatError(f"{root} exists but is not a synthetic data set (no {SPEC_FILE}); choose another data.root")
    return ()


def human_bytes(count: float) -> str:
    """'1.5 TB', '250.0 MB' (powers of 1000, as disks are sold and ``df -H`` shows them)."""
    units = ("B", "KB", "MB", "GB", "TB")
    power = 0
    while count >= 1000 and power < len(units) - 1:
        count, power = count / 1000, power + 1
    return f"{count:.0f} B" if power == 0 else f"{count:.1f} {units[power]}"


def _existing_folder(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists: where its disk is asked for free space."""
    return next(p for p in (path, *path.parents) if p.is_dir())


def check_space(todo: Sequence[tuple[SyntheticSet, tuple[str, ...]]], remedy: str) -> int:
    """The bytes that the (set, splits still missing) of ``todo`` need; OutputError when they are more than
    their disk has free (before any is written): how much they need, how much is free, and ``remedy``."""
    need: dict[int, tuple[int, int, Path]] = {}  # disk -> (bytes, sets, where)
    disks: dict[Path, tuple[int, Path]] = {}  # folder holding sets -> (its disk, the folder that exists)
    for data_set, missing in todo:
        parent = Path(data_set.root).absolute().parent  # the sets of one request are usually siblings
        if parent not in disks:
            folder = _existing_folder(parent)
            disks[parent] = (os.stat(folder).st_dev, folder)
        disk, folder = disks[parent]
        total, sets, where = need.get(disk, (0, 0, folder))
        need[disk] = (total + estimated_bytes(data_set.spec, missing), sets + 1, where)
    for total, sets, where in need.values():
        free = shutil.disk_usage(where).free
        if total > free:
            raise OutputError(
                f"cannot generate {sets} synthetic data set{'s' if sets > 1 else ''} under {where}: "
                f"{'they need' if sets > 1 else 'it needs'} about {human_bytes(total)} and the disk has "
                f"{human_bytes(free)} free; {remedy}"
            )
    return sum(total for total, _sets, _where in need.values())


def ensure_synthetic_sets(sets: Sequence[SyntheticSet], remedy: str = "free space or choose another data.root") -> list[Path]:
    """Each of ``sets`` on disk, generated where it (or a split of it) is missing. Before anything is
    written the space they need is checked against the disk's free space (``check_space``, naming
    ``remedy``: what to change); several to generate are logged one line each as they start."""
    todo = []
    for data_set in sets:
        present = present_splits(Path(data_set.root), data_set.spec)
        missing = tuple(s for s in data_set.splits if s not in present)
        if missing:
            todo.append((data_set, missing))
    total = check_space(todo, remedy)
    if len(todo) > 1:
        log.info(f"generating {len(todo)} synthetic data sets, about {human_bytes(total)}")
    for number, (data_set, missing) in enumerate(todo, start=1):
        if len(todo) > 1:
            log.info(f"synthetic data set {number}/{len(todo)}: {data_set.root} ({', '.join(missing)}, seed {data_set.spec.seed})")
        _add_splits(Path(data_set.root), data_set.spec, missing)
    return [Path(data_set.root) for data_set in sets]


def _add_splits(root: Path, spec: SyntheticSpec, missing: tuple[str, ...]) -> None:
    """Generate the ``missing`` splits into a temporary sibling of ``root`` and move them in: the whole
    folder when ``root`` holds nothing yet, else each split, then the record (``synthetic.json``) renamed
    over the old one. An interrupted generation leaves nothing half-written behind (a split folder moved
    in but not yet recorded is replaced by the next attempt), and concurrent jobs do not collide."""
    present = present_splits(root, spec)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        generate(tmp, spec, missing)
        try:
            if not present:
                if root.exists():
                    root.rmdir()
                os.rename(tmp, root)
                return
            for split in missing:
                shutil.rmtree(root / split, ignore_errors=True)
                os.replace(tmp / f"{split}_seqmap.txt", root / f"{split}_seqmap.txt")
                os.rename(tmp / split, root / split)
            (tmp / SPEC_FILE).write_text(json.dumps(_record(spec, present + missing), indent=2))
            os.replace(tmp / SPEC_FILE, root / SPEC_FILE)
        except OSError:
            if not set(missing) <= set(present_splits(root, spec)):  # not another job having finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_synthetic(root: Path, spec: SyntheticSpec, splits: tuple[str, ...] = SPLITS) -> Path:
    """The data set at ``root`` with (at least) the sequences of ``splits``, generated unless it is there
    (``ensure_synthetic_sets`` of one set)."""
    return ensure_synthetic_sets([SyntheticSet(Path(root), spec, tuple(splits))])[0]

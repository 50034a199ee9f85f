"""DancetrackDataModule: DanceTrack-layout splits as windowed clip loaders."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import ClipDataset, SequenceRecord
from scene_model.data.mot_format import list_sequences
from scene_model.data.synthetic import SPLITS, SyntheticSet, SyntheticSpec, ensure_synthetic_sets
from scene_model.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError, DataFormatError


def extra_sets_problem(extra_train_sets: object, synthetic: object) -> str | None:
    """What is wrong with ``data.extra_train_sets`` for a fit, else None: its sets come from the synthetic
    generator, so they need ``data.synthetic``."""
    if isinstance(extra_train_sets, int) and extra_train_sets > 0 and synthetic is None:
        return (
            f"{extra_train_sets} adds the train splits of other synthetic generator seeds, which needs "
            "data.synthetic (0 for real data)"
        )
    return None


def round_batches(seq_index: np.ndarray, batch_size: int) -> list[list[int]]:
    """Batches of windows of different sequences, each sequence's windows in order: every batch takes
    the next window of the first ``batch_size`` sequences that have one left (a sequence that ends makes
    room for the next), so a window is always run after the window before it in its sequence."""
    queues = [np.flatnonzero(seq_index == s).tolist() for s in dict.fromkeys(seq_index.tolist())]
    batches = []
    while any(queues):
        active = [q for q in queues if q][:batch_size]
        batches.append([q.pop(0) for q in active])
    return batches


class EvalBatches(IterableDataset):
    """The evaluation windows of ``dataset`` as whole batches in ``round_batches`` order.

    An iterable of batches rather than a sampler, so that a distributed run keeps this order (Lightning
    gives a map-style loader a distributed sampler of its own); with loader workers, batch i is made by
    worker i mod n, which is the order in which the loader hands them out.
    """

    def __init__(self, dataset: ClipDataset, batch_size: int) -> None:
        self.dataset = dataset
        self.batches = round_batches(dataset.seq_index, batch_size)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[SceneBatch]:
        worker = get_worker_info()
        first, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for indices in self.batches[first::step]:
            yield collate_tracking([self.dataset[i] for i in indices])


@dataclass(frozen=True)
class EvalSplit:
    """A split evaluated as whole sequences: its folder (where the ground truth is) and its sequences."""

    directory: Path
    sequences: list[SequenceRecord]

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def lengths(self) -> dict[str, int]:
        """{sequence name: number of frames}, in the split's order."""
        return {r.info.name: r.info.length for r in self.sequences}


class DancetrackDataModule(L.LightningDataModule):
    """Train/val/test loaders over ``root`` in the MOTChallenge/DanceTrack layout.

    With ``synthetic`` set (a dict of SyntheticSpec options), the synthetic data set is generated
    at ``root`` on first use. The train and val splits must have gt/gt.txt; the test split may lack
    it (DanceTrack's test split has none), its clips then carry no boxes.

    Validation and test run over the evaluation windows: ``clip_len`` frames every ``val_stride``
    frames (default ``clip_len - 1``: consecutive windows share one frame), the last one ending on
    the sequence's last frame. The tracker links these same windows into tracks, so the validation
    loop's predictions serve the losses, the pictures and the tracking metrics.
    """

    def __init__(
        self,
        root: str,
        synthetic: dict | None,
        extra_train_sets: int,
        clip_len: int,
        chain_len: int,
        max_interval: int,
        train_stride: int,
        val_stride: int | None,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        pin_memory: bool,
        train_split: str,
        val_split: str,
        test_split: str,
        class_ids: Sequence[int],
        num_classes: int | None,
        train_sizes: Sequence[int],
        eval_size: int,
        max_size: int,
        hflip: float,
        crop: float,
        crop_scale: Sequence[float],
        color_jitter: float,
        hue: float,
        min_box_size: float,
        skip_bad_frames: bool,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.synthetic = dict(synthetic) if synthetic else None
        self.extra_train_sets = int(extra_train_sets)
        self.clip_len = clip_len
        self.chain_len = chain_len
        self.max_interval = max_interval
        self.train_stride = train_stride
        self.val_stride = val_stride or max(1, clip_len - 1)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.class_ids = tuple(int(c) for c in class_ids)
        if num_classes is not None and num_classes < len(self.class_ids):
            raise ValueError(f"num_classes={num_classes} is smaller than the {len(self.class_ids)} class_ids")
        self.skip_bad_frames = skip_bad_frames
        self.train_transform = ClipTransform(
            True, train_sizes, max_size, hflip=hflip, crop=crop, crop_scale=crop_scale,
            color_jitter=color_jitter, hue=hue, min_box_size=min_box_size,
        )
        self.eval_transform = ClipTransform.evaluation(eval_size, max_size, min_box_size)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.datasets: dict[str, ClipDataset] = {}
        self.skipped_frames: set[str] = set()  # unreadable frames skipped so far (main process)

    def prepare_data(self) -> None:
        """Generate the synthetic data sets (``data.synthetic``) that the trainer's stage reads: to fit (or
        without a trainer), the data set and its ``extra_train_sets``; to validate or test (``train=false``),
        the data set's evaluation splits alone. Their size is checked against the free space first."""
        if self.synthetic is None:
            return
        spec = SyntheticSpec.from_dict(self.synthetic)
        if not self.fitting():
            ensure_synthetic_sets([SyntheticSet(self.root, spec, self.evaluation_splits())])
            return
        extra = [
            SyntheticSet(root, SyntheticSpec.from_dict({**self.synthetic, "seed": seed}), ("train",))
            for seed, root in zip(self.extra_train_seeds(), self.train_roots()[1:], strict=True)
        ]
        remedy = f"lower data.extra_train_sets ({self.extra_train_sets}), " if extra else ""
        ensure_synthetic_sets([SyntheticSet(self.root, spec), *extra], f"{remedy}free space or choose another data.root")

    def fitting(self) -> bool:
        """Whether the data module serves a fit: its trainer's, or (no trainer) whoever calls it directly."""
        return self.trainer is None or self.trainer.state.fn == TrainerFn.FITTING

    def evaluation_splits(self) -> tuple[str, ...]:
        """The synthetic splits an evaluation reads: all but the train split (unless val or test is it)."""
        train = self.splits["train"]
        return tuple(s for s in SPLITS if s != train or train in (self.splits["val"], self.splits["test"]))

    def extra_train_seeds(self) -> list[int]:
        """The generator seeds of the ``extra_train_sets``: 1000 x (seed + 1) + 1, + 2, ..., derived from
        the data set's own seed (another seed, other extra sets) and apart from the small seeds a
        researcher scores on (the benchmark's are 100-111 and 200-211)."""
        problem = extra_sets_problem(self.extra_train_sets, self.synthetic)
        if problem:
            raise ConfigError(f"data.extra_train_sets: {problem}")
        base = 1000 * (int(self.synthetic["seed"]) + 1) if self.synthetic is not None else 0
        return [base + k for k in range(1, self.extra_train_sets + 1)]

    def train_roots(self) -> list[Path]:
        """The data sets whose train split is trained on: ``root``, then the train split of each extra
        set, kept beside it as ``<root>_train_seed<N>`` (more training sequences of the same generator;
        the val and test splits stay ``root``'s)."""
        return [self.root] + [self.root.with_name(f"{self.root.name}_train_seed{seed}") for seed in self.extra_train_seeds()]

    def load_split(
        self, split: str, require_gt: bool = True, require_boxes: bool = False, root: Path | None = None
    ) -> list[SequenceRecord]:
        """Every sequence of a split of ``root`` (default: ``data.root``; seqmap order when there is one),
        with a one-line summary.

        A sequence whose gt.txt holds no box to train on (empty, or none of ``class_ids``) is named in a
        warning; with ``require_boxes`` (the training split) a split without a single box is an error.
        """
        root = self.root if root is None else Path(root)
        records = [SequenceRecord.load(d, require_gt, self.class_ids) for d in list_sequences(root, split)]
        with_gt = [r.gt for r in records if r.gt is not None]
        for record in records:
            if record.gt is not None and len(record.gt) == 0:
                rank_zero_warn(f"{record.info.gt_path} holds no box of data.class_ids={list(self.class_ids)}")
        if require_boxes and not any(len(g) for g in with_gt):
            raise DataFormatError(
                f"{root / split}: no sequence holds a box of data.class_ids={list(self.class_ids)} to train on "
                "(every gt/gt.txt is empty, or none of its rows has such a class and mark 1)"
            )
        rank_zero_info(
            f"{root / split}: {len(records)} sequences, {sum(r.info.length for r in records)} frames, "
            f"{sum(len(g) for g in with_gt)} boxes"
            + (f", {sum(g.num_dropped for g in with_gt)} of zero or negative size dropped" if with_gt else ", no gt")
        )
        return records

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and "train" not in self.datasets:
            records = [r for root in self.train_roots() for r in self.load_split(self.splits["train"], require_boxes=True, root=root)]
            self.datasets["train"] = ClipDataset(
                records, self.clip_len, self.train_transform, train=True,
                max_interval=self.max_interval, stride=self.train_stride, skip_bad_frames=self.skip_bad_frames,
                chain_len=self.chain_len,
            )
        if stage in (None, "fit", "validate") and "val" not in self.datasets:
            self.datasets["val"] = self._eval_dataset(self.splits["val"], require_gt=True)
        if stage in (None, "test") and "test" not in self.datasets:
            self.datasets["test"] = self._eval_dataset(self.splits["test"], require_gt=False)

    def _eval_dataset(self, split: str, require_gt: bool) -> ClipDataset:
        return ClipDataset.evaluation(
            self.load_split(split, require_gt), self.clip_len, self.eval_transform, self.val_stride, self.skip_bad_frames
        )

    def eval_split(self, split: str | None = None, require_gt: bool = True) -> EvalSplit:
        """A split to evaluate as whole sequences: by default the validation split, with the sequences
        the validation loader reads (loaded once); else the ``split`` folder, read now."""
        if split is None:
            if "val" not in self.datasets:
                self.setup("validate")
            return EvalSplit(self.root / self.splits["val"], self.datasets["val"].sequences)
        return EvalSplit(self.root / split, self.load_split(split, require_gt))

    def eval_windows(self, split: EvalSplit, part: tuple[int, int] = (0, 1)) -> DataLoader:
        """The evaluation windows of ``split``: each batch the next window of up to ``eval_batch_size``
        different sequences, each sequence's windows in order (``round_batches``), as validation, the
        tracker and the tools run them. ``part`` = (index, count): a process's share, every count-th
        sequence from the index-th (a process left without one repeats a sequence, as a distributed
        sampler pads its share)."""
        dataset = ClipDataset.evaluation(
            self.share_of(split, part), self.clip_len, self.eval_transform, self.val_stride, self.skip_bad_frames
        )
        return DataLoader(
            EvalBatches(dataset, self.eval_batch_size), batch_size=None, num_workers=self.num_workers,
            pin_memory=self.pins_memory(), persistent_workers=self.num_workers > 0,
        )

    @staticmethod
    def share_of(split: EvalSplit, part: tuple[int, int]) -> list[SequenceRecord]:
        """The sequences of ``split`` that process ``part`` = (index, count) evaluates: every count-th from
        the index-th (a process left without one repeats one, as a distributed sampler pads its share)."""
        index, count = part
        return split.sequences[index::count] or split.sequences[index % max(len(split.sequences), 1) :][:1]

    def pins_memory(self) -> bool:
        """``pin_memory`` where the batches go to an accelerator: the trainer's, else (a loader outside a fit)
        whichever torch finds. A CPU run pins nothing (torch would only warn that it cannot)."""
        if not self.pin_memory:
            return False
        if self.trainer is not None:
            return not isinstance(self.trainer.accelerator, CPUAccelerator)
        return torch.accelerator.is_available()

    def process_share(self) -> tuple[int, int]:
        """(rank, number of processes) of the trainer this data module serves; (0, 1) without one."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers, collate_fn=collate_tracking,
            pin_memory=self.pins_memory(), persistent_workers=self.num_workers > 0, drop_last=len(dataset) > self.batch_size,
        )

    def on_before_batch_transfer(self, batch: SceneBatch, dataloader_idx: int) -> SceneBatch:
        self.skipped_frames.update(batch.skipped_frames)
        return batch

    def transfer_batch_to_device(self, batch: SceneBatch, device: torch.device, dataloader_idx: int) -> SceneBatch:
        return batch.to(device, non_blocking=True)

    def teardown(self, stage: str) -> None:
        if self.skipped_frames:
            shown = sorted(self.skipped_frames)
            rank_zero_warn(
                f"skipped {len(shown)} unreadable frame(s) (data.skip_bad_frames=true): "
                + ", ".join(shown[:5]) + (" ..." if len(shown) > 5 else "")
            )

    def val_dataloader(self) -> DataLoader:
        return self.eval_windows(self.eval_split(), self.process_share())

    def test_dataloader(self) -> DataLoader:
        test = self.datasets["test"]
        return self.eval_windows(EvalSplit(self.root / self.splits["test"], test.sequences), self.process_share())

"""DancetrackDataModule: DanceTrack-layout splits as windowed clip loaders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import ClipDataset, SequenceRecord
from scene_model.data.mot_format import list_sequences
from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic
from scene_model.data.types import SceneBatch
from scene_model.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_clip_transform


class DancetrackDataModule(L.LightningDataModule):
    """Train/val/test loaders over ``root`` in the MOTChallenge/DanceTrack layout.

    With ``synthetic`` set (a dict of SyntheticSpec options), the synthetic data set is generated
    at ``root`` on first use.
    """

    def __init__(
        self,
        root: str,
        synthetic: dict | None = None,
        clip_len: int = 4,
        max_interval: int = 3,
        train_stride: int = 1,
        val_stride: int | None = None,
        batch_size: int = 2,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        class_ids: Sequence[int] = (1,),
        train_sizes: Sequence[int] = (160,),
        eval_size: int = 160,
        max_size: int = 1333,
        hflip: float = 0.5,
        crop: bool = False,
        color_jitter: float = 0.0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.synthetic = dict(synthetic) if synthetic else None
        self.clip_len = clip_len
        self.max_interval = max_interval
        self.train_stride = train_stride
        self.val_stride = val_stride or clip_len
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.class_ids = tuple(int(c) for c in class_ids)
        if num_classes is not None and num_classes < len(self.class_ids):
            raise ValueError(f"num_classes={num_classes} is smaller than the {len(self.class_ids)} class_ids")
        self.train_transform = build_clip_transform(
            True, train_sizes, max_size, hflip=hflip, crop=crop, color_jitter=color_jitter
        )
        self.eval_transform = build_clip_transform(False, (eval_size,), max_size)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.datasets: dict[str, ClipDataset] = {}

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            ensure_synthetic(self.root, SyntheticSpec.from_dict(self.synthetic))

    def load_split(self, split: str, with_gt: bool = True) -> list[SequenceRecord]:
        return [SequenceRecord.load(d, with_gt, self.class_ids) for d in list_sequences(self.root, split)]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and "train" not in self.datasets:
            self.datasets["train"] = ClipDataset(
                self.load_split(self.splits["train"]), self.clip_len, self.train_transform, train=True,
                max_interval=self.max_interval, stride=self.train_stride, class_ids=self.class_ids,
            )
        if stage in (None, "fit", "validate") and "val" not in self.datasets:
            self.datasets["val"] = self._eval_dataset(self.splits["val"])
        if stage in (None, "test") and "test" not in self.datasets:
            self.datasets["test"] = self._eval_dataset(self.splits["test"])

    def _eval_dataset(self, split: str) -> ClipDataset:
        return ClipDataset(
            self.load_split(split), self.clip_len, self.eval_transform, train=False,
            stride=self.val_stride, class_ids=self.class_ids,
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_tracking,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(self.datasets[split]) > self.batch_size,
        )

    def transfer_batch_to_device(self, batch: SceneBatch, device: torch.device, dataloader_idx: int) -> SceneBatch:
        return batch.to(device, non_blocking=True)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

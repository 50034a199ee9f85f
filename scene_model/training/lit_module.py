"""SceneModelLightningModule: the training and validation steps around a SceneModel."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.optim import Optimizer

from scene_model.association import ASSOCIATION_TERMS, Association
from scene_model.data.datamodule import DancetrackDataModule, EvalSplit
from scene_model.data.types import SceneBatch
from scene_model.models import SceneModel
from scene_model.models.frame_cache import FrameCache
from scene_model.models.scene_model import CarriedQueries, DenoisingQueries, EncodedClip
from scene_model.tracking.sequence_tracker import Observe, SequenceTracker, TrackingSession
from scene_model.training.fast_paths import apply_fast_paths, channels_last_frames
from scene_model.training.head_adapter import DN_TERMS, GROUP_TERMS, LOSS_TERMS, HeadAdapter
from scene_model.training.precision import machine_autocast
from scene_model.training.weights import check_fits


class SceneModelLightningModule(L.LightningModule):
    """Built (conf/module) from ready objects (model, association, head adapter) and partials (optimizer,
    scheduler). The association (conf/association) is a module of its own beside the model: its
    parameters, if any, train with the transformer's.

    ``run_config`` (a plain dict of the resolved run config) is saved as the only hyperparameter, ``config``, so
    checkpoints stay loadable with ``weights_only=True``. ``channels_last`` and ``compile`` are the
    speed switches ``module.channels_last`` and ``module.compile`` (see training.fast_paths).
    """

    def __init__(
        self,
        model: SceneModel,
        association: Association,
        head_adapter: HeadAdapter,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None,
        channels_last: bool,
        compile: bool,
        run_config: dict | None = None,
    ) -> None:
        super().__init__()
        self.model = apply_fast_paths(model, channels_last=channels_last, compile=compile)
        self.channels_last = channels_last
        self.association = association
        self.head_adapter = head_adapter
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.backbone_frozen = False
        self.frame_cache: FrameCache | None = None  # set for an ordered evaluation pass (cached_frames)
        self.tracking: TrackingSession | None = None  # the validation's tracking pass, when it scores (callbacks.TrackingEvaluator)
        if run_config is not None:
            self.save_hyperparameters({"config": run_config})

    # --- backbone freeze policy (driven by training.callbacks.BackboneFreeze) ---------------------
    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freeze: no gradients and batch-norm statistics held (backbone kept in eval mode)."""
        self.backbone_frozen = not trainable
        for param in self.model.backbone.parameters():
            param.requires_grad_(trainable)
        self.model.backbone.train(self.training and trainable)

    def train(self, mode: bool = True) -> SceneModelLightningModule:
        super().train(mode)
        if self.backbone_frozen:
            self.model.backbone.eval()
        return self

    # --- steps ------------------------------------------------------------------------------------
    def encode(self, batch: SceneBatch) -> EncodedClip:
        """The per-frame part of the model (backbone, encoder, proposals) over every frame of ``batch``;
        in an ordered pass (``cached_frames``) each frame is encoded once, however many windows hold it."""
        frames = channels_last_frames(batch.frames) if self.channels_last else batch.frames
        if self.frame_cache is None or self.training:
            return self.model.encode(frames, batch.image_sizes)
        keys = [
            [(name, int(target.frame_index)) if target.frame_index >= 0 else None for target in sample]
            for name, sample in zip(batch.sequence_ids, batch.targets, strict=True)
        ]
        return self.frame_cache.encode(self.model.encode_frames, frames, batch.image_sizes, keys)

    @contextlib.contextmanager
    def cached_frames(self) -> Iterator[FrameCache]:
        """An ordered pass over evaluation windows (a validation, a tracked split): the frames two
        windows share are encoded once (``models.frame_cache``)."""
        self.frame_cache = FrameCache()
        try:
            yield self.frame_cache
        finally:
            self.frame_cache = None

    def forward(
        self, batch: SceneBatch, denoising: DenoisingQueries | None = None, tracks: CarriedQueries | None = None
    ) -> dict[str, Any]:
        """The model on one batch of windows (its frames, padding, image sizes and frame numbers), with
        the ``tracks`` carried from the windows before and DINO's ``denoising`` queries in training."""
        return self.model.decode(self.encode(batch), batch.padding_mask, batch.frame_indices, denoising, tracks)

    @torch.no_grad()
    def predict(self, batch: SceneBatch, tracks: CarriedQueries | None = None) -> dict[str, Any]:
        """The prediction call of tracking (``train=false``'s submission, the tools): ``batch`` (and
        ``tracks``) moved to the module's device, no gradients, in the trainer's precision when one is
        attached, else in the machine's (``training.precision.machine_autocast``)."""
        batch = batch.to(self.device)
        if tracks is not None:
            tracks = CarriedQueries(*(x.to(self.device) for x in (tracks.content, tracks.boxes, tracks.padding, tracks.source)))
        try:
            precision = self.trainer.precision_plugin.forward_context()
        except RuntimeError:  # not attached to a Trainer
            precision = machine_autocast(self.device)
        with precision:
            return self(batch, tracks=tracks)

    def track_split(
        self,
        datamodule: DancetrackDataModule,
        split: EvalSplit,
        tracker: SequenceTracker,
        part: tuple[int, int] = (0, 1),
        observe: Observe | None = None,
    ) -> dict[str, np.ndarray]:
        """Track the sequences of ``split`` (those of process ``part`` = (index, count): every count-th)
        with this model, each window run once and each frame encoded once: {sequence: result rows}.
        ``train=false``'s submission and the tools track here; the validation loop tracks as it goes
        (``validation_step``)."""
        names = [record.info.name for record in datamodule.share_of(split, part)]
        with self.cached_frames():
            return tracker.track(self.predict, datamodule.eval_windows(split, part), names, self.association, observe)

    def loss_step(
        self, batch: SceneBatch, train: bool, tracks: CarriedQueries | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Forward and losses of one batch: (loss terms, model outputs of its last window). Training,
        validation, test and the benchmark's plain loop all go through here. Denoising queries (DINO)
        train only; validation and test losses stay those of the matching queries. ``tracks``: the
        queries a validation window is decoded with (the tracker's, for an association that carries
        them); its losses are those of the Q detect queries.

        A batch of chains (``SceneBatch.window_len``) is encoded once and decoded window by window; the
        association's ``Chain`` sees every window (its outputs and the track each query was matched to),
        may carry queries into the next one, and adds its loss terms over the chain. The detection losses
        are averaged over the windows."""
        clip = self.encode(batch)
        starts = batch.window_starts()
        chain = self.association.chain(train)
        per_window, unused_labels = [], False
        for start in starts:
            window = batch.window(start) if batch.window_len is not None else batch
            carried = chain.queries() if tracks is None else tracks
            matching = self.model.num_queries + (carried.content.shape[1] if carried is not None else 0)
            dn_state = self.head_adapter.make_denoising(window.tracks, matching) if train else None
            unused_labels |= train and dn_state is None
            outputs = self.model.decode(
                clip.window(start, window.frames.shape[1]), window.padding_mask, window.frame_indices,
                dn_state.queries if dn_state else None, carried,
            )
            scored = outputs if tracks is None else first_queries(outputs, self.model.num_queries)
            terms, assigned = self.head_adapter.losses_and_assignment(scored, window.tracks, window.padding_mask, dn_state, chain.targets())
            if batch.window_len is not None:
                chain.add(window, outputs, assigned)
            per_window.append(terms)
        losses = {k: torch.stack([w[k] for w in per_window]).mean() for k in per_window[0]}
        for name, value in chain.losses().items():
            losses[name] = value
            losses["total"] = losses["total"] + value
        if unused_labels and self.model.label_embed is not None:
            # A batch without tracks has no denoising queries: keep the label embedding in the graph so
            # that DDP (find_unused_parameters=false) still gets its gradient, zero, from every rank.
            losses["total"] = losses["total"] + 0.0 * self.model.label_embed.weight.sum()
        return losses, outputs

    def _logged_step(
        self, batch: SceneBatch, stage: str, tracks: CarriedQueries | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        losses, outputs = self.loss_step(batch, stage == "train", tracks)
        common = dict(on_step=stage == "train", on_epoch=True, batch_size=len(batch), sync_dist=True)
        # Lightning reads progress-bar values from the device at every batch end: a host sync per training
        # step. The training loss goes to the loggers only (read every trainer.log_every_n_steps).
        # Tags: <stage>/loss/total, the final decoder layer's terms (cls, bbox, giou, exist), the weighted
        # sums of the earlier layers (aux) and of the proposals (enc), and the denoising terms (dn_*).
        self.log(f"{stage}/loss/total", losses["total"].detach(), prog_bar=stage != "train", **common)
        names = [name for name in LOSS_TERMS + GROUP_TERMS + DN_TERMS + ASSOCIATION_TERMS if name in losses]
        self.log_dict({f"{stage}/loss/{name}": losses[name].detach() for name in names}, **common)
        return losses, outputs

    def training_step(self, batch: SceneBatch, batch_idx: int) -> Tensor:
        return self._logged_step(batch, "train")[0]["total"]

    def validation_step(self, batch: SceneBatch, batch_idx: int) -> dict[str, Any]:
        """The losses, the outputs (without ``aux`` and ``enc``) that the pictures read and, when the
        validation tracks (``self.tracking``, set by ``callbacks.TrackingEvaluator``), the batch's window
        predictions, linked into tracks from this one forward."""
        return self._evaluation_step(batch, "val", self.tracking)

    def test_step(self, batch: SceneBatch, batch_idx: int) -> dict[str, Any]:
        return self._evaluation_step(batch, "test", None)

    def _evaluation_step(self, batch: SceneBatch, stage: str, tracking: TrackingSession | None) -> dict[str, Any]:
        tracks = tracking.carried(batch) if tracking is not None else None
        losses, outputs = self._logged_step(batch, stage, tracks)
        windows = tracking.step(batch, outputs) if tracking is not None else None
        return {"loss": losses["total"], "outputs": {k: v for k, v in outputs.items() if k not in ("aux", "enc")}, "windows": windows}

    def on_validation_epoch_start(self) -> None:
        self.frame_cache = FrameCache()  # the val windows run in order: a shared frame is encoded once

    def on_validation_epoch_end(self) -> None:
        self.frame_cache = None

    # --- optimisation -----------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Two groups: the backbone at ``model.backbone.lr_mult`` times the base rate, and the rest."""
        backbone_ids = {id(p) for p in self.model.backbone.parameters()}
        backbone = list(self.model.backbone.parameters())
        rest = [p for p in self.parameters() if id(p) not in backbone_ids]
        base_lr = self.optimizer_factory.keywords.get("lr") if hasattr(self.optimizer_factory, "keywords") else None
        backbone_group: dict[str, Any] = {"params": backbone, "name": "backbone"}
        if base_lr is not None:
            backbone_group["lr"] = base_lr * self.model.backbone.lr_mult
        return [{"params": rest, "name": "transformer"}, backbone_group]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.parameter_groups())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        """``trainer.gradient_clip_val`` applied to the model's gradients and, apart, to the association's
        (as MOTIP clips its ID decoder apart from its detector): a fresh association's large early
        gradients would otherwise take the whole clipped norm and stall the detector, or the reverse."""
        own = {id(p) for p in self.association.parameters() if p.grad is not None}
        if not gradient_clip_val or not own:
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        for part in ([p for p in params if id(p) not in own], [p for p in params if id(p) in own]):
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(part, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(part, gradient_clip_val)

    # --- checkpoints ------------------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model with one message naming what differs (before Lightning
        would fail on it with a list of every tensor)."""
        source = self.trainer.ckpt_path or "being loaded"
        check_fits(checkpoint, self.state_dict(), self.hparams.get("config"), source, strict=self.strict_loading)


def first_queries(outputs: dict[str, Any], count: int) -> dict[str, Any]:
    """The model outputs of the first ``count`` queries (and of the earlier layers, ``aux``): a window's
    Q detect queries without the track queries decoded after them. ``enc`` (per feature cell) stays."""
    cut = lambda layer: {k: v[:, :, :count] for k, v in layer.items() if isinstance(v, Tensor)}  # noqa: E731
    first = {**cut(outputs), "aux": [cut(layer) for layer in outputs.get("aux", [])]}
    return {**first, "enc": outputs["enc"]} if "enc" in outputs else first

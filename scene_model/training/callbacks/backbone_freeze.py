"""Backbone freeze policy: frozen for the first ``unfreeze_after`` epochs, trainable afterwards."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from scene_model.models import Backbone


class BackboneFreeze(L.Callback):
    """Applies the backbone's ``freeze`` / ``unfreeze_after`` (``model.backbone.*``) at every epoch start.

    The backbone keeps its place in the optimiser (its own parameter group) and in DDP's reducer;
    while frozen its parameters have ``requires_grad=False``, receive no gradient and are therefore
    not updated (nor decayed) by the optimiser. Deciding from the current epoch makes a resumed run
    land in the right state. Under DDP a frozen backbone needs ``find_unused_parameters=True``
    (conf/trainer/ddp*.yaml set it from ``model.backbone.freeze``).
    """

    @staticmethod
    def frozen_at(backbone: Backbone, epoch: int) -> bool:
        """Frozen when ``freeze`` is set and ``epoch < unfreeze_after``; ``unfreeze_after <= 0`` never unfreezes."""
        if not backbone.freeze:
            return False
        return backbone.unfreeze_after <= 0 or epoch < backbone.unfreeze_after

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        frozen = self.frozen_at(pl_module.model.backbone, trainer.current_epoch)
        if frozen != pl_module.backbone_frozen:
            pl_module.set_backbone_trainable(not frozen)
            rank_zero_info(f"epoch {trainer.current_epoch}: backbone {'frozen' if frozen else 'trainable'}")

"""A search trial's fit reports to its Optuna trial after every validation and stops when the pruner says so."""

from __future__ import annotations

import logging

import lightning as L
import optuna
from lightning.pytorch.trainer.states import TrainerFn
from optuna.pruners import BasePruner, NopPruner

from scene_model.runtime.search.storage import open_storage

log = logging.getLogger(__name__)
PRUNED_EPOCH = "pruned_epoch"  # user attribute of a trial whose fit was stopped: the sweeper records it PRUNED


class ReportToTrial(L.Callback):
    """Reports ``monitor`` to trial ``trial`` of the study ``study_name`` in ``storage`` (step: the epoch) after
    every validation of a fit, and asks the study's ``pruner`` whether to go on; when not, the fit ends after
    this epoch as an early stop ends it (its checkpoints written, ``train.py`` returning the last value),
    and the trial is marked for the sweeper. Only rank zero talks to the study; it tells the others.
    Without a trial (a run outside a search) it does nothing.
    """

    def __init__(
        self, monitor: str, storage: str | None, study_name: str | None, trial: int | None, pruner: BasePruner | None = None
    ) -> None:
        self.monitor, self.storage, self.study_name, self.trial_number = monitor, storage, study_name, trial
        self.pruner = pruner or NopPruner()
        self.trial: optuna.Trial | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.trial_number is not None and self.storage and trainer.is_global_zero:
            study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage), pruner=self.pruner)
            self.trial = trial_by_number(study, self.trial_number)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or self.trial_number is None:
            return
        prune = self.report(trainer) if self.trial is not None else False
        if trainer.strategy.broadcast(prune, src=0):
            trainer.should_stop = True

    def report(self, trainer: L.Trainer) -> bool:
        """Report this epoch's value; True when the pruner stops the trial."""
        assert self.trial is not None
        if self.monitor not in trainer.callback_metrics:
            return False  # not logged this epoch: run.optimized_value names what was
        value, epoch = float(trainer.callback_metrics[self.monitor]), trainer.current_epoch
        self.trial.report(value, step=epoch)
        if not self.trial.should_prune():
            return False
        self.trial.set_user_attr(PRUNED_EPOCH, epoch)
        log.info(
            f"Trial {self.trial.number} pruned after epoch {epoch} by {type(self.pruner).__name__}: "
            f"{self.monitor} = {value:.6g}; the fit stops here, its checkpoints kept"
        )
        return True


def trial_by_number(study: optuna.Study, number: int) -> optuna.Trial:
    """Trial ``number`` of ``study``, reached from another process than the one that asked for it (Optuna
    finds a trial by its storage id only; the number is what the sweeper hands to a trial's job)."""
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)

"""SkipNonFiniteSteps: a non-finite step changes nothing, is counted, and too many in a row stop the run."""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from scene_model.errors import DivergenceError
from scene_model.training.callbacks import SkipNonFiniteSteps
from scene_model.training.callbacks.non_finite import describe_batch


class TinyModule(L.LightningModule):
    """Linear -> BatchNorm -> Linear; batches listed in ``nan_input`` get NaN inputs (which poison the
    batch-norm statistics), those in ``nan_grad`` a finite loss whose gradient is infinite."""

    def __init__(self, nan_input=(), nan_grad=(), fused=False):
        super().__init__()
        self.fused = fused
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
        self.nan_input, self.nan_grad = set(nan_input), set(nan_grad)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        if batch_idx in self.nan_input:
            x = torch.full_like(x, math.nan)
        loss = self.net(x).pow(2).mean()
        if batch_idx in self.nan_grad:
            weight = self.net[0].weight
            loss = loss + torch.sqrt(weight - weight.detach()).sum()  # value 0, gradient inf
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.1, fused=self.fused)


class Snapshots(L.Callback):
    """Module state (parameters, buffers) and optimiser state before and after every batch."""

    def __init__(self):
        self.before, self.after = {}, {}

    @staticmethod
    def state(trainer, pl_module):
        return copy.deepcopy({"module": pl_module.state_dict(), "optimizer": trainer.optimizers[0].state_dict()})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before[batch_idx] = self.state(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after[batch_idx] = self.state(trainer, pl_module)


def fit(module, guard, steps, tmp_path):
    snapshots = Snapshots()
    data = DataLoader(TensorDataset(torch.randn(steps * 4, 4)), batch_size=4)
    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[guard, snapshots], gradient_clip_val=1.0,
    )
    trainer.fit(module, data)
    return trainer, snapshots


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if torch.is_tensor(a):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("fused", [False, True], ids=["host-decision", "fused-on-device"])
@pytest.mark.parametrize("fault", ["nan_input", "nan_grad"])
def test_a_bad_step_changes_nothing_and_is_counted(fault, fused, tmp_path):
    torch.manual_seed(0)
    guard = SkipNonFiniteSteps(max_bad_steps=3, check_every_n_steps=None)
    trainer, snaps = fit(TinyModule(**{fault: [2]}, fused=fused), guard, steps=5, tmp_path=tmp_path)
    assert same(snaps.before[2], snaps.after[2]), "the skipped step changed the module or the optimiser"
    for good in (1, 3):
        assert not same(snaps.before[good]["module"], snaps.after[good]["module"]), good
    final = snaps.after[4]["module"]
    assert all(torch.isfinite(v).all() for v in final.values() if v.is_floating_point())
    assert guard.total == 1 and guard.consecutive == 0
    assert trainer.global_step == 5
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("train/skipped_steps")
    assert [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]] == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("fused", [False, True], ids=["host-decision", "fused-on-device"])
def test_too_many_bad_steps_in_a_row_stop_the_run(fused, tmp_path):
    guard = SkipNonFiniteSteps(max_bad_steps=2, check_every_n_steps=None)
    with pytest.raises(DivergenceError, match=r"2 optimisation steps in a row .*training\.max_bad_steps=2"):
        fit(TinyModule(nan_input=[1, 3, 4], fused=fused), guard, steps=8, tmp_path=tmp_path)
    assert guard.total == 3  # step 1 alone was skipped and forgiven; steps 3 and 4 stopped the run


def test_decided_on_the_device_the_bad_steps_are_read_later_and_still_stop_the_run(tmp_path):
    guard = SkipNonFiniteSteps(max_bad_steps=2, check_every_n_steps=4)
    module = TinyModule(nan_input=[1, 2], fused=True)
    with pytest.raises(DivergenceError, match=r"training stopped at step 3: 2 optimisation steps in a row"):
        fit(module, guard, steps=8, tmp_path=tmp_path)
    assert guard.total == 2 and guard.consecutive == 2
    assert all(torch.isfinite(v).all() for v in module.state_dict().values() if v.is_floating_point())


def test_bad_steps_still_unread_at_the_end_of_the_epoch_are_counted(tmp_path):
    guard = SkipNonFiniteSteps(max_bad_steps=5, check_every_n_steps=100)
    fit(TinyModule(nan_grad=[3], fused=True), guard, steps=5, tmp_path=tmp_path)
    assert guard.total == 1 and guard.consecutive == 0


def test_counters_survive_a_checkpoint():
    guard = SkipNonFiniteSteps(max_bad_steps=5, check_every_n_steps=None)
    guard.consecutive, guard.total = 2, 7
    restored = SkipNonFiniteSteps(max_bad_steps=5, check_every_n_steps=None)
    restored.load_state_dict(guard.state_dict())
    assert (restored.consecutive, restored.total) == (2, 7)


def test_describe_batch_names_sequences_and_frames():
    frames = torch.tensor([[4, 5, 6], [10, 11, -1]])
    assert describe_batch(["dancetrack0004", "dancetrack0010"], frames) == (
        "dancetrack0004 frames 4-6, dancetrack0010 frames 10-11"
    )


def test_max_bad_steps_must_be_positive():
    with pytest.raises(ValueError, match="max_bad_steps"):
        SkipNonFiniteSteps(max_bad_steps=0, check_every_n_steps=None)

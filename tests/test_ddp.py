"""DDP on CPU (trainer=ddp_cpu: gloo, 2 processes) as a user runs it: a real subprocess."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from scene_model.training.run import start_method
from tests.conftest import tiny_overrides
from tests.test_cli import run_train
from tests.test_train import read_events


@pytest.mark.slow
def test_ddp_cpu_writes_one_run_directory_from_rank_zero(tiny_root, tmp_path):
    # A backbone frozen in epoch 0 runs DDP with find_unused_parameters (set from model.backbone.freeze).
    result = run_train("trainer=ddp_cpu", f"paths.log_dir={tmp_path}", *tiny_overrides(tiny_root), "trainer.max_epochs=2",
                       "model.backbone.freeze=true", "model.backbone.unfreeze_after=1")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stdout + result.stderr
    # Rank 1 logs to its own file; everything else of the run is rank zero's, in one directory.
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "checkpoints", "config_resolved.yaml", "tensorboard", "tracking", "train.log", "train_ddp_process_1.log", "viz"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "viz").glob("*.png")) == ["epoch_000.png", "epoch_001.png"]
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    # Each rank validates its own half of the windows; the logged metric is their mean, on both ranks.
    values = [re.findall(r"val/loss/total = (\S+)", (run / log).read_text()) for log in ("train.log", "train_ddp_process_1.log")]
    assert values[0] and values[0] == values[1]
    assert [e.step for e in read_events(run).Scalars("train/loss/total_step")] == [0, 1, 2, 3]  # 2 batches per rank and epoch


@pytest.mark.slow
def test_local_sweep_with_script_ddp_is_refused_with_the_alternatives(tiny_root, tmp_path):
    result = run_train("-m", "trainer=ddp_cpu", f"paths.log_dir={tmp_path}", *tiny_overrides(tiny_root))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ddp_spawn" in output and "hydra/launcher=slurm" in output
    assert not list(tmp_path.glob("multiruns/*/0/checkpoints"))


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("ddp", "popen"), ("ddp_spawn", "spawn"), ("auto", "popen"), ("fsdp", "popen"),
     ({"_target_": "lightning.pytorch.strategies.DDPStrategy"}, "popen"),
     ({"_target_": "lightning.pytorch.strategies.DDPStrategy", "start_method": "spawn"}, "spawn")],
)
def test_start_method_read_from_the_strategy_config(strategy, expected):
    assert start_method(OmegaConf.create(strategy) if isinstance(strategy, dict) else strategy) == expected

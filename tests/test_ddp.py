"""DDP on CPU (trainer=ddp_cpu: gloo, 2 processes) as a user runs it: a real subprocess."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from scene_model.runtime.checkpoints import load_checkpoint_file
from scene_model.runtime.run import start_method
from scene_model.tools.compose import compose_run_config
from tests.conftest import REPO, tiny_overrides
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


# --- a rank that dies or fails -------------------------------------------------------------------
def ddp_run(tmp_path, root, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """A two-process CPU fit of the tiny config into ``tmp_path/run``; the result and when it ended."""
    overrides = [o for o in tiny_overrides(root) if not o.startswith("data.synthetic=")]
    result = subprocess.run(
        [sys.executable, "train.py", "trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'run'}", *overrides,
         "data.synthetic=null", "eval.every_n_epochs=0", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    return result, time.time()


@pytest.mark.slow
def test_a_rank_killed_mid_fit_ends_the_run_within_seconds_naming_it(tiny_root, tmp_path):
    stamp = tmp_path / "killed"
    result, ended = ddp_run(tmp_path, tiny_root, "trainer.limit_train_batches=6", "data.train_stride=1",
                            "training.checkpoint_every_n_steps=1", "+callbacks.kill._target_=tests.probes.SigkillAtStep",
                            "+callbacks.kill.step=2", "+callbacks.kill.rank=1", f"+callbacks.kill.stamp={stamp}")
    killed_at, pid = stamp.read_text().split()
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1] == f"RankError: rank 1 of 2 (pid {pid}) was killed by SIGKILL; the other ranks were stopped"
    assert "Traceback" not in result.stderr and "by peer" not in result.stderr, result.stderr[-3000:]
    assert ended - float(killed_at) < 5
    # What rank 0 wrote before stays: its log ends with the line, the step checkpoint is whole.
    run = tmp_path / "run"
    assert (run / "train.log").read_text().splitlines()[-1].endswith(result.stderr.splitlines()[-1])
    assert load_checkpoint_file(run / "checkpoints" / "last.ckpt")["global_step"] >= 1


@pytest.mark.slow
def test_a_rank_that_never_reaches_its_collective_is_ended_by_the_watch(tiny_root, tmp_path):
    """Rank 0 busy (as when it waits in an NCCL collective, which a dead peer does not fail) when rank 1 dies."""
    stamp = tmp_path / "killed"
    result, ended = ddp_run(tmp_path, tiny_root, "trainer.limit_train_batches=6", "data.train_stride=1",
                            "+callbacks.kill._target_=tests.probes.SigkillAtStep", "+callbacks.kill.step=2",
                            "+callbacks.kill.rank=1", f"+callbacks.kill.stamp={stamp}",
                            "+callbacks.nap._target_=tests.probes.SleepAtStep", "+callbacks.nap.step=2",
                            "+callbacks.nap.rank=0", "+callbacks.nap.seconds=300")
    killed_at, pid = stamp.read_text().split()
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1] == f"RankError: rank 1 of 2 (pid {pid}) was killed by SIGKILL; the other ranks were stopped"
    assert ended - float(killed_at) < 5


@pytest.mark.slow
def test_a_bad_frame_one_rank_reads_ends_the_run_naming_the_rank_and_the_frame(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    # Validation sequences are split between the ranks: with a second one, the second is rank 1's alone.
    first = next((root / "val").iterdir())
    second = root / "val" / f"{first.name}b"
    shutil.copytree(first, second)
    info = second / "seqinfo.ini"
    info.write_text(info.read_text().replace(f"name={first.name}", f"name={second.name}"))
    with open(root / "val_seqmap.txt", "a") as seqmap:
        seqmap.write(f"{second.name}\n")
    frame = sorted((second / "img1").glob("*.jpg"))[0]
    frame.write_bytes(frame.read_bytes()[:300])
    result, _ = ddp_run(tmp_path, root)
    assert result.returncode == 1, result.stderr[-3000:]
    cause = f"UnreadableFrameError: corrupt or truncated image {frame}: "
    last = result.stderr.splitlines()[-1]
    assert re.fullmatch(rf"RankError: rank 1 of 2 failed: {re.escape(cause)}.*; the other ranks were stopped", last) or (
        last.startswith(cause) and last.endswith(" (rank 0 of 2)")), result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "by peer" not in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("trainer", ["ddp", "ddp_cpu"])
def test_collectives_time_out_after_five_minutes_not_the_backends_default(trainer):
    strategy = instantiate(compose_run_config([f"trainer={trainer}", "trainer.strategy.timeout.seconds=42"]).trainer.strategy)
    assert strategy._timeout == timedelta(seconds=42)
    strategy = instantiate(compose_run_config([f"trainer={trainer}"]).trainer.strategy)
    assert strategy._timeout == timedelta(minutes=5)
    assert torch.distributed.constants.default_pg_timeout > strategy._timeout

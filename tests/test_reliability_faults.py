"""Faults from outside: a full or read-only disk, two runs at once, signals, hostile gt.txt values.

Each ends in one line naming the file, line or key, a non-zero exit status, and no damaged file.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from scene_model.data.datamodule import DancetrackDataModule
from scene_model.data.mot_format import list_sequences, read_gt, read_seqinfo
from scene_model.errors import CheckpointError, DataFormatError, OutputError
from scene_model.outputs import partial_path, write_atomically, write_text_atomically
from scene_model.runtime.checkpoints import load_checkpoint_file, save_atomically
from scene_model.runtime.run import user_error
from scene_model.runtime.run_dirs import claim_dir
from scene_model.runtime.signals import stop_signals
from scene_model.runtime.write_errors import output_errors
from tests.builders import datamodule as make_datamodule
from tests.conftest import REPO, tiny_overrides
from tests.data_helpers import write_sequence
from tests.test_cli import run_train

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MiB filesystem (root only); the simulated cases below run everywhere."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def remount_read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


# --- a full or read-only disk ------------------------------------------------------------------
def test_a_full_disk_while_writing_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("the previous results\n")

    def half_then_full(partial: Path) -> None:
        partial.write_text("half")
        raise ENOSPC

    with pytest.raises(OutputError, match=rf"^cannot write metrics {path}: No space left on device$"):
        write_atomically(path, half_then_full, "metrics")
    assert path.read_text() == "the previous results\n" and not partial_path(path).exists()


def test_torch_reporting_a_full_disk_as_runtime_error_is_a_checkpoint_error(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_atomically({"state_dict": {"w": torch.zeros(2)}}, path)

    def save_like_torch_on_a_full_disk(obj, f):  # torch.save's zip writer: RuntimeError, the OSError its context
        f.write(b"PK half a file")
        try:
            raise ENOSPC
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    monkeypatch.setattr(torch, "save", save_like_torch_on_a_full_disk)
    with pytest.raises(CheckpointError, match=rf"^cannot write checkpoint {path}: No space left on device$"):
        save_atomically({"state_dict": {"w": torch.ones(2)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint_file(path)["state_dict"]["w"], torch.zeros(2))
    assert not partial_path(path).exists()


def test_a_real_full_and_read_only_disk(small_tmpfs):
    path = small_tmpfs / "checkpoints" / "last.ckpt"
    save_atomically({"state_dict": {"w": torch.zeros(4)}}, path)
    with pytest.raises(CheckpointError, match=rf"^cannot write checkpoint {path}: No space left on device$"):
        save_atomically({"state_dict": {"w": torch.ones(2**20)}}, path)  # 4 MiB on a 1 MiB disk
    assert torch.equal(load_checkpoint_file(path)["state_dict"]["w"], torch.zeros(4))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    remount_read_only(small_tmpfs)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*: Read-only file system$"):
        save_atomically({"state_dict": {"w": torch.zeros(4)}}, path)
    with pytest.raises(OutputError, match=r"cannot write the run config .*config_resolved\.yaml: Read-only file system$"):
        write_text_atomically(small_tmpfs / "config_resolved.yaml", "seed: 1\n", "the run config")


def test_tensorboard_on_a_full_disk_names_its_event_file(small_tmpfs, capsys):
    logger = TensorBoardLogger(str(small_tmpfs), name="tensorboard", version="")
    trainer = types.SimpleNamespace(loggers=[logger])
    with pytest.raises(OutputError, match=r"^cannot write TensorBoard events .*/tensorboard/events\.out\.tfevents\..*: "
                                          r"No space left on device$"):
        with output_errors(trainer, small_tmpfs):
            for step in range(100_000):
                logger.log_metrics({f"train/m{j}": float(step) for j in range(50)}, step=step)
            logger.experiment.flush()
    assert "Traceback" not in capsys.readouterr().err  # the writer thread's traceback is not printed


def test_a_refused_write_anywhere_is_a_user_error():
    err = PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/runs/x/viz/epoch_000.png")
    assert str(user_error(err)) == "cannot write /runs/x/viz/epoch_000.png: Permission denied"
    assert user_error(FileNotFoundError(errno.ENOENT, "No such file")) is None  # not a write: a bug, traceback kept


@pytest.mark.slow
def test_train_py_on_a_full_disk_is_one_line_and_keeps_what_was_written(tiny_root, small_tmpfs):
    run = small_tmpfs / "run"
    result = run_train(*tiny_overrides(tiny_root), f"hydra.run.dir={run}")  # a checkpoint is ~50 MB, the disk 1 MiB
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    # The first write that no longer fits is named: the checkpoint, or TensorBoard's events (pictures)
    assert re.search(
        rf"(CheckpointError: cannot write checkpoint {run}/checkpoints/|OutputError: cannot write TensorBoard events {run}/tensorboard/)",
        output,
    ), output[-3000:]
    assert "No space left on device" in output and "Traceback" not in output, output[-3000:]
    assert (run / "config_resolved.yaml").read_text().startswith("task_name: train")
    assert not list(run.glob("checkpoints/.*"))


@pytest.mark.slow
def test_a_read_only_output_directory_is_one_line(small_tmpfs):
    remount_read_only(small_tmpfs)
    for where in (f"paths.log_dir={small_tmpfs}/outputs", f"hydra.run.dir={small_tmpfs}/run"):
        result = run_train(where, "debug=fast")
        output = result.stdout + result.stderr
        assert result.returncode == 1
        assert "OutputError: cannot write the run directory" in output and "Read-only file system" in output, output
        assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output


# --- run directories -----------------------------------------------------------------------------
def _claim(args: tuple[str, multiprocessing.synchronize.Barrier]) -> str:
    path, barrier = args
    barrier.wait()
    return claim_dir(path)


def test_runs_started_together_never_share_a_directory(tmp_path):
    base = str(tmp_path / "runs" / "2026-01-01_12-00-00")
    with multiprocessing.Manager() as manager, multiprocessing.Pool(6) as pool:
        barrier = manager.Barrier(6)
        claimed = pool.map(_claim, [(base, barrier)] * 6)
    assert sorted(claimed) == [base] + [f"{base}_{n}" for n in range(1, 6)]
    assert all(Path(p).is_dir() for p in claimed)


@pytest.mark.slow
def test_two_train_py_in_the_same_second_get_two_directories(tmp_path):
    same = f"hydra.run.dir=${{claim_dir:{tmp_path}/runs/same_second}}"  # what two runs of one second resolve to
    processes = [subprocess.Popen([sys.executable, "train.py", same, "train=false"], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [1, 1], outputs
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["same_second", "same_second_1"]
    for run in runs:  # each run's log holds its own refusal only
        assert (tmp_path / "runs" / run / "train.log").read_text().count("ConfigError: ckpt_path") == 1


def test_a_fresh_fit_into_a_finished_run_is_refused_before_hydra_rewrites_its_record(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"the earlier run's weights")
    (run / ".hydra").mkdir()
    record = {name: f"the earlier run's {name}\n" for name in ("config.yaml", "hydra.yaml", "overrides.yaml")}
    for name, text in record.items():
        (run / ".hydra" / name).write_text(text)
    result = run_train(f"hydra.run.dir={run}", "seed=7", timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"ConfigError: {run}/checkpoints already holds checkpoints of an earlier run: resume it with ckpt_path=last, "
        "or start a new run in another directory (leave hydra.run.dir at its default)")
    assert {name: (run / ".hydra" / name).read_text() for name in record} == record
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "checkpoints"]  # no train.log either


# --- signals ---------------------------------------------------------------------------------------
def test_a_signal_outside_the_training_loop_stops_at_once_with_its_status():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
    assert (stop.received, stop.exit_code) == (signal.SIGTERM, 143)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers given back


def test_a_sigterm_before_the_loop_is_named_sigterm_and_nothing_else(tiny_root, tmp_path):
    run = tmp_path / "run"
    result = run_train(*tiny_overrides(tiny_root), f"hydra.run.dir={run}",
                       "+callbacks.stop_probe._target_=tests.probes.SignalAtSetup")
    assert result.returncode == 143, result.stderr[-3000:]
    assert result.stderr.endswith("\nstopped by SIGTERM: no checkpoint was written yet\n"), result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "KeyboardInterrupt" not in output and "Traceback" not in output, output[-3000:]


def assert_last_line_after_the_progress_bar(result: subprocess.CompletedProcess, line: str, run: Path) -> None:
    """``line`` is stderr's last line, and train.log's; the progress bar on stdout was closed before it
    (its last redraw ends its line) and not redrawn after it; nothing of Lightning's that says nothing to us."""
    assert result.stderr.endswith(line + "\n"), result.stderr[-3000:]
    bar = result.stdout[result.stdout.rindex("Epoch 0:"):]  # its last redraw
    assert "\r" not in bar and bar.endswith("\n"), result.stdout[-500:]
    assert line not in result.stdout
    assert (run / "train.log").read_text().splitlines()[-1].endswith(f"[ERROR] - {line}")
    for noise in ("Tip:", "LeafSpec", "Received SIGTERM", "Detected KeyboardInterrupt", "`weights_only` was not set"):
        assert noise not in result.stdout + result.stderr, noise


def test_an_error_mid_fit_is_the_last_line_on_stderr_after_the_progress_bar(tiny_root, tmp_path):
    run = tmp_path / "run"
    result = run_train(*tiny_overrides(tiny_root), f"hydra.run.dir={run}", "trainer.enable_progress_bar=true",
                       "data.train_stride=1", "trainer.limit_train_batches=3", "eval.every_n_epochs=0",
                       "+callbacks.fault._target_=tests.probes.RaiseAtStep", "+callbacks.fault.step=1",
                       "+callbacks.fault.message=gt.txt:7: a bad line found mid-fit")
    assert result.returncode == 1, result.stderr[-3000:]
    assert_last_line_after_the_progress_bar(result, "DataFormatError: gt.txt:7: a bad line found mid-fit", run)
    assert result.stdout.splitlines()[-1].startswith("Epoch 0:  33%")  # 1 of 3 steps


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_fit_saves_last_ckpt_exits_128_plus_signum_and_resumes(tiny_root, tmp_path, signum):
    run = tmp_path / "run"
    common = [*tiny_overrides(tiny_root), "data.train_stride=1", "trainer.limit_train_batches=6",
              "training.checkpoint_every_n_steps=0", f"hydra.run.dir={run}"]
    stopped = run_train(*common, "trainer.enable_progress_bar=true", "+callbacks.stop_probe._target_=tests.probes.SignalAtStep",
                        "+callbacks.stop_probe.step=3", f"+callbacks.stop_probe.signum={int(signum)}")
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode == 128 + signum, output[-3000:]
    assert_last_line_after_the_progress_bar(
        stopped, f"stopped by {signal.Signals(signum).name}: {run}/checkpoints/last.ckpt is the last checkpoint; "
                 f"resume with ckpt_path=last hydra.run.dir={run}", run)
    assert "Traceback" not in output, output[-3000:]
    checkpoint = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 4  # signalled during step 4: that step finishes, then the fit stops
    resumed = run_train(*common, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint_file(run / "checkpoints" / "last.ckpt")["global_step"] == 6


# --- gt.txt ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,1,nan,10,20,20,1,1,1", r":2: left must be a finite number, found 'nan'$"),
        ("1,1,10,10,inf,20,1,1,1", r":2: width must be a finite number, found 'inf'$"),
        ("1,1,10,10,20,-inf,1,1,1", r":2: height must be a finite number, found '-inf'$"),
        ("1,1,10,10,20,20,1,1,nan", r":2: visibility must be a finite number, found 'nan'$"),
        ("1,2.5,10,10,20,20,1,1,1", r":2: id must be an integer, found '2\.5'$"),
        ("1,nan,10,10,20,20,1,1,1", r":2: id must be a finite number, found 'nan'$"),
        ("1.5,2,10,10,20,20,1,1,1", r":2: frame must be a 1-based integer, found '1\.5'$"),
        ("1,2,10,10,20,20,1,1.5,1", r":2: class must be an integer, found '1\.5'$"),
    ],
)
def test_a_bad_gt_number_names_file_and_line(tmp_path, line, message):
    seq = write_sequence(tmp_path, gt=f"1,1,10,10,20,20,1,1,1\n{line}\n")
    with pytest.raises(DataFormatError, match=rf"^{seq / 'gt' / 'gt.txt'}{message}"):
        read_gt(read_seqinfo(seq), (1,))


def test_a_gt_txt_that_is_a_directory_and_a_root_that_is_a_file_are_named_as_such(tmp_path):
    seq = write_sequence(tmp_path, gt=None)
    (seq / "gt" / "gt.txt").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"gt/gt\.txt is a directory, expected a file"):
        read_gt(read_seqinfo(seq))
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DataFormatError, match=r"data root .*a_file is a file, expected a directory"):
        list_sequences(tmp_path / "a_file", "train")


def datamodule(root: Path) -> DancetrackDataModule:
    return make_datamodule(root)


def test_an_empty_gt_txt_is_a_warning_naming_it(tmp_path, caplog):
    write_sequence(tmp_path, name="seq1")
    empty = write_sequence(tmp_path, name="seq2", gt="")
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match=rf"{empty / 'gt' / 'gt.txt'} holds no box"):
        records = datamodule(tmp_path).load_split("train", require_boxes=True)
    assert [len(r.gt) for r in records] == [1, 0]


def test_a_training_split_without_a_box_is_an_error(tmp_path):
    write_sequence(tmp_path, name="seq1", gt="")
    write_sequence(tmp_path, name="seq2", gt="1,1,10,10,20,20,1,2,1\n")  # only class 2; data.class_ids=[1]
    with pytest.warns(UserWarning), pytest.raises(DataFormatError, match=r"train: no sequence holds a box of data\.class_ids=\[1\]"):
        datamodule(tmp_path).setup("fit")
    assert np.array_equal(read_gt(read_seqinfo(tmp_path / "train" / "seq2")).track_ids, [1])  # all classes: kept

"""Bad data on disk, through ``python train.py``: one clear message naming the file, exit code 1. What the
synthetic data costs on disk, checked before it is generated, and what an evaluation needs of it."""

from __future__ import annotations

import json
import logging
import re
import shutil
import types
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic, estimated_bytes
from scene_model.runtime.run import main, train
from tests.builders import datamodule as make_datamodule
from tests.builders import synthetic_spec
from tests.conftest import TINY_SYNTHETIC, compose_config, tiny_overrides
from tests.test_cli import run_train


def truncate_train_frames(root: Path) -> str:
    """Cut every training frame in half (an interrupted copy); returns the message expected."""
    for frame in (root / "train").glob("*/img1/*.jpg"):
        frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    return "UnreadableFrameError: corrupt or truncated image " + str(root / "train")


def break_gt_line(root: Path) -> str:
    gt = sorted((root / "train").glob("*/gt/gt.txt"))[0]
    lines = gt.read_text().splitlines()
    lines[1] = lines[1].replace(",", ",x", 1)
    gt.write_text("\n".join(lines) + "\n")
    return f"DataFormatError: {gt}:2: a column is not a number"


def remove_seqinfo(root: Path) -> str:
    seqinfo = sorted((root / "val").glob("*/seqinfo.ini"))[0]
    seqinfo.unlink()
    return f"DataFormatError: missing {seqinfo}; expected the MOTChallenge/DanceTrack layout"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "workers"), [(truncate_train_frames, 1), (break_gt_line, 0), (remove_seqinfo, 0)]
)
def test_bad_data_is_one_message_and_exit_code_1(damage, workers, tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    expected = damage(root)
    overrides = [o for o in tiny_overrides(root) if not o.startswith("data.synthetic=")]
    result = run_train(*overrides, "data.synthetic=null", f"data.num_workers={workers}", f"hydra.run.dir={tmp_path}/run")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert expected in output, output[-3000:]
    assert "Traceback" not in output and "Original Traceback" not in output, output[-3000:]
    assert output.count(expected.split(":")[0] + ":") == 1


# --- what generating the synthetic data costs, and what an evaluation needs of it ---------------------
def fake_free_space(monkeypatch, free: int) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 * free, 9 * free, free))


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def test_the_estimate_of_a_data_set_is_what_it_takes_on_disk(tiny_root):
    spec = SyntheticSpec.from_dict(synthetic_spec(**TINY_SYNTHETIC))
    assert 0.85 < estimated_bytes(spec) / disk_bytes(tiny_root) < 1.15
    assert estimated_bytes(spec, ("train",)) < estimated_bytes(spec)


def test_sets_the_disk_cannot_hold_stop_the_run_before_anything_is_generated(tiny_root, tmp_path, monkeypatch, caplog):
    fake_free_space(monkeypatch, 5_000_000)
    data = tmp_path / "data"
    overrides = tiny_overrides(tiny_root) + [f"data.root={data}/tiny", "data.extra_train_sets=50"]
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exited:
        main(compose_config(overrides, tmp_path / "run"))
    assert exited.value.code == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert re.fullmatch(
        rf"OutputError: cannot generate 51 synthetic data sets under {tmp_path}: they need about 1\d\.\d MB and the "
        r"disk has 5\.0 MB free; lower data\.extra_train_sets \(50\), free space or choose another data\.root",
        record.getMessage(),
    ), record.getMessage()
    assert not data.exists() and not list(tmp_path.glob(".data*"))  # nothing generated, no temporary folder left
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_several_sets_that_fit_are_generated_with_a_line_each(tmp_path, monkeypatch, caplog):
    spec = synthetic_spec(num_train=1, num_val=1, num_test=0, num_frames=4, sizes=[[96, 54]], seed=5)
    fake_free_space(monkeypatch, 10_000_000)
    dm = make_datamodule(tmp_path / "set", synthetic=spec, extra_train_sets=2)
    with caplog.at_level(logging.INFO, logger="scene_model.data.synthetic"):
        dm.prepare_data()
    lines = [r.getMessage() for r in caplog.records if r.name == "scene_model.data.synthetic"]
    assert lines[0].startswith("generating 3 synthetic data sets, about ") and lines[0].endswith(" KB")
    assert lines[1:] == [
        f"synthetic data set 1/3: {tmp_path / 'set'} (train, val, test, seed 5)",
        f"synthetic data set 2/3: {tmp_path / 'set_train_seed6001'} (train, seed 6001)",
        f"synthetic data set 3/3: {tmp_path / 'set_train_seed6002'} (train, seed 6002)",
    ]
    caplog.clear()
    dm.prepare_data()  # all there: nothing generated, nothing said
    assert not [r for r in caplog.records if r.name == "scene_model.data.synthetic"]


def test_a_split_added_later_is_the_one_the_whole_data_set_holds(tmp_path):
    spec = SyntheticSpec.from_dict(synthetic_spec(num_train=1, num_val=1, num_test=1, num_frames=4, sizes=[[96, 54]]))
    root = ensure_synthetic(tmp_path / "set", spec, splits=("val", "test"))
    val_gt = root / "val" / "synth0002" / "gt" / "gt.txt"
    before = val_gt.stat().st_mtime_ns
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["test", "val"]
    ensure_synthetic(root, spec)  # a fit on the same root adds the train split
    assert json.loads((root / "synthetic.json").read_text()) == spec.to_json()  # the whole data set now
    assert val_gt.stat().st_mtime_ns == before  # the splits there were left alone
    whole = ensure_synthetic(tmp_path / "whole", spec)
    assert (root / "train" / "synth0001" / "gt" / "gt.txt").read_text() == (whole / "train" / "synth0001" / "gt" / "gt.txt").read_text()
    assert (root / "train_seqmap.txt").read_text() == "name\nsynth0001\n"
    assert not list(tmp_path.glob(".set-*"))


@pytest.fixture(scope="module")
def checkpoint(tiny_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fit")
    train(compose_config(tiny_overrides(tiny_root) + ["debug=fast", "eval.every_n_epochs=0"], run))
    return run / "checkpoints" / "last.ckpt"


def test_evaluating_a_checkpoint_needs_no_training_set(checkpoint, tiny_root, tmp_path, caplog):
    """train=false with the extra train sets left on and no data.synthetic: the missing root is the error."""
    overrides = tiny_overrides(tiny_root) + ["train=false", f"ckpt_path={checkpoint}", f"data.root={tmp_path}/nowhere",
                                             "data.synthetic=null", "data.extra_train_sets=7"]
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exited:
        main(compose_config(overrides, tmp_path / "run"))
    assert exited.value.code == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(f"DataFormatError: data root {tmp_path}/nowhere does not exist")


def test_evaluating_a_checkpoint_generates_the_evaluation_splits_alone(checkpoint, tiny_root, tmp_path, monkeypatch):
    trained_on = tiny_overrides(tiny_root)
    overrides = trained_on + ["train=false", f"ckpt_path={checkpoint}", f"data.root={tmp_path}/data/tiny",
                              "data.extra_train_sets=2", "eval.submit_split=null"]
    train(compose_config(overrides, tmp_path / "run"))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["tiny"]  # no extra train sets
    assert sorted(p.name for p in (tmp_path / "data" / "tiny").iterdir() if p.is_dir()) == ["test", "val"]
    assert (tmp_path / "run" / "tracking" / "val_metrics.csv").is_file()


def test_memory_is_pinned_only_where_batches_go_to_an_accelerator(tiny_root):
    dm = make_datamodule(tiny_root, pin_memory=True, clip_len=3, eval_size=32)
    dm.setup("validate")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*pin_memory")  # torch's warning on a machine without one
        dm.trainer = types.SimpleNamespace(accelerator=CPUAccelerator(), global_rank=0, world_size=1)
        assert not dm.val_dataloader().pin_memory
        next(iter(dm.val_dataloader()))
        dm.trainer = None  # a loader outside a fit: pinned where torch finds an accelerator
        assert dm.val_dataloader().pin_memory == torch.accelerator.is_available()
        next(iter(dm.val_dataloader()))
    dm.trainer = types.SimpleNamespace(accelerator=CUDAAccelerator(), global_rank=0, world_size=1)
    assert dm.val_dataloader().pin_memory and dm.eval_windows(dm.eval_split()).pin_memory
    assert not make_datamodule(tiny_root, pin_memory=False).pins_memory()

"""Checkpoints: atomic writes that survive SIGKILL, weights_only loading, one clear error for a bad file."""

from __future__ import annotations

import functools
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from scene_model.errors import CheckpointError
from scene_model.outputs import partial_path
from scene_model.runtime.checkpoints import AtomicCheckpointIO, load_checkpoint_file, save_atomically
from scene_model.training.weights import check_fits
from tests.conftest import REPO

WRITER = """
import sys, torch
from scene_model.runtime.checkpoints import save_atomically
path = sys.argv[1]
save_atomically({"state_dict": {"w": torch.zeros(4)}, "tag": "old"}, path)
print("old saved", flush=True)
new = {"state_dict": {"w": torch.ones(16 * 2**20)}, "tag": "new"}  # 64 MB
while True:
    save_atomically(new, path)
"""


def lightning_checkpoint(**state_dict) -> dict:
    return {"state_dict": state_dict, "pytorch-lightning_version": "2.6.0", "epoch": 0, "global_step": 0}


@pytest.mark.parametrize("kill_after_bytes", [1, 32 * 2**20])
def test_sigkill_while_writing_leaves_the_previous_checkpoint_loadable(tmp_path, kill_after_bytes):
    path = tmp_path / "last.ckpt"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "old saved"
        partial, deadline = partial_path(path), time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size >= kill_after_bytes):
            assert time.monotonic() < deadline and writer.poll() is None, "the writer never got that far"
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    finally:
        writer.kill()
    assert writer.returncode == -signal.SIGKILL
    checkpoint = load_checkpoint_file(path)
    if checkpoint["tag"] == "old":
        assert torch.equal(checkpoint["state_dict"]["w"], torch.zeros(4))
    else:  # killed after a rename: then the new file is whole
        assert checkpoint["state_dict"]["w"].numel() == 16 * 2**20


def test_atomic_save_round_trip_leaves_no_partial_file(tmp_path):
    path = tmp_path / "sub" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(lightning_checkpoint(w=torch.arange(3.0)), path)
    loaded = AtomicCheckpointIO().load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(3.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_failed_write_is_an_error_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "last.ckpt"
    save_atomically(lightning_checkpoint(w=torch.zeros(2)), path)
    with pytest.raises(TypeError, match="pickle"):  # a bug, not a disk problem: raised as it is
        save_atomically({"state_dict": {}, "bad": (x for x in [])}, path)
    assert torch.equal(load_checkpoint_file(path)["state_dict"]["w"], torch.zeros(2))
    assert not partial_path(path).exists()
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*a_file/last\.ckpt"):
        save_atomically(lightning_checkpoint(), blocked / "last.ckpt")


def write_bad(kind: str, path) -> None:
    if kind == "truncated":
        torch.save(lightning_checkpoint(w=torch.zeros(1000)), path)
        whole = path.read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "unsafe":
        torch.save({**lightning_checkpoint(), "hook": functools.partial(print, "hello")}, path)
    elif kind == "plain_pickle":
        path.write_bytes(pickle.dumps({"state_dict": {}}))
    elif kind == "not_lightning":
        torch.save({"model": {"w": torch.zeros(2)}}, path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "cannot be read .*truncated, corrupt or not a PyTorch checkpoint"),
        ("garbage", "cannot be read"),
        ("empty", "cannot be read"),
        ("unsafe", r"holds a Python object \(functools\.partial\) .*weights_only=True"),
        ("plain_pickle", "cannot be read"),
        ("not_lightning", r"not a Lightning checkpoint .*no 'state_dict'; found \['model'\]"),
    ],
)
def test_a_bad_file_is_one_clear_error_naming_it(tmp_path, kind, message):
    path = tmp_path / f"{kind}.ckpt"
    write_bad(kind, path)
    with pytest.raises(CheckpointError, match=message) as caught:
        AtomicCheckpointIO().load_checkpoint(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match=r"nowhere\.ckpt does not exist"):
        load_checkpoint_file(tmp_path / "nowhere.ckpt")


def test_checkpoint_of_another_model_names_what_differs():
    here = {"model.query.weight": torch.zeros(20, 128), "model.head.bias": torch.zeros(1)}
    there = {"model.query.weight": torch.zeros(8, 32), "model.old.weight": torch.zeros(3)}
    checkpoint = {"state_dict": there, "hyper_parameters": {"config": {"model": {"num_queries": 8, "d_model": 32}}}}
    config = {"model": {"num_queries": 20, "d_model": 128}}
    with pytest.raises(CheckpointError) as caught:
        check_fits(checkpoint, here, config, "runs/x/last.ckpt")
    text = str(caught.value)
    assert "runs/x/last.ckpt was written by another model" in text
    assert "model.num_queries=8 there, 20 here" in text and "model.d_model=32 there, 128 here" in text
    assert "model.query.weight: [8, 32] there, [20, 128] here" in text
    assert "1 tensor(s) missing (e.g. model.head.bias)" in text and "1 unknown tensor(s) (e.g. model.old.weight)" in text
    check_fits({"state_dict": dict(here)}, here, config, "same")  # a fitting checkpoint passes

"""Bad data on disk, through ``python train.py``: one clear message naming the file, exit code 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import tiny_overrides
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

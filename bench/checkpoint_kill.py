"""SIGKILL a process that keeps rewriting last.ckpt, many times, and count how often the file is left unloadable.

Compares Lightning's TorchCheckpointIO (temporary file in $TMPDIR, then a move) with AtomicCheckpointIO
(temporary file beside the target, then a rename). Put --tmpdir on another filesystem than --dir to
see the case of a node-local /tmp and checkpoints on shared storage:

    python -m bench.checkpoint_kill --tmpdir /dev/shm --dir /var/tmp/checkpoint_kill --trials 20

In ``python -m bench`` (``make bench``) it runs with TMPDIR on /dev/shm when that is another
filesystem than the checkpoint directory (the case that breaks a move), else on the same one.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench import Row

WRITER = """
import sys, torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from scene_model.runtime.checkpoints import AtomicCheckpointIO
io = {"lightning": TorchCheckpointIO, "atomic": AtomicCheckpointIO}[sys.argv[1]]()
path, numel = sys.argv[2], int(sys.argv[3])
for i in range(10**9):
    io.save_checkpoint({"state_dict": {"w": torch.full((numel,), float(i))}}, path)
    if i == 0:
        print("first checkpoint written", flush=True)
"""


def trial(io: str, path: Path, numel: int, tmpdir: str, rng: random.Random) -> bool:
    """One kill at a random moment of the rewriting; True when last.ckpt still loads whole."""
    env = {**os.environ, "TMPDIR": tmpdir}
    repo = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, io, str(path), str(numel)], cwd=repo, env=env,
                              stdout=subprocess.PIPE, text=True)
    writer.stdout.readline()
    time.sleep(rng.uniform(0.0, 2.0))
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    try:
        weights = torch.load(path, weights_only=True)["state_dict"]["w"]
        return weights.numel() == numel
    except Exception:
        return False


def count_broken(io: str, directory: Path, tmpdir: str, trials: int, megabytes: int) -> int:
    """Kills at random moments (the same moments for every ``io``); how many left last.ckpt unloadable."""
    rng = random.Random(0)
    directory.mkdir(parents=True, exist_ok=True)
    broken = 0
    for _ in range(trials):
        for leftover in directory.iterdir():
            leftover.unlink()
        broken += not trial(io, directory / "last.ckpt", megabytes * 2**18, tmpdir, rng)
    return broken


def run(quick: bool) -> list[Row]:
    trials, megabytes = (4, 32) if quick else (20, 128)
    with tempfile.TemporaryDirectory(dir="data" if Path("data").is_dir() else None) as directory:
        shm = Path("/dev/shm")
        other_fs = shm.is_dir() and os.stat(shm).st_dev != os.stat(directory).st_dev
        tmpdir = str(shm) if other_fs else directory
        note = f"{megabytes} MB, TMPDIR on {'another' if other_fs else 'the same'} filesystem"
        return [
            Row("checkpoint_kill", f"{io} IO: last.ckpt unloadable after a kill", count_broken(io, Path(directory) / io, tmpdir, trials, megabytes), f"of {trials}", note)
            for io in ("lightning", "atomic")
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where last.ckpt is written")
    parser.add_argument("--tmpdir", default="/tmp", help="TMPDIR of the writing process")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=128, help="size of the checkpoint")
    parser.add_argument("--io", choices=["lightning", "atomic"], action="append", help="default: both")
    args = parser.parse_args()
    same_fs = os.stat(args.dir.parent if not args.dir.exists() else args.dir).st_dev == os.stat(args.tmpdir).st_dev
    print(f"checkpoint dir {args.dir}, TMPDIR {args.tmpdir} ({'same' if same_fs else 'another'} filesystem), "
          f"{args.megabytes} MB, {args.trials} kills each")
    for io in args.io or ["lightning", "atomic"]:
        broken = count_broken(io, args.dir, args.tmpdir, args.trials, args.megabytes)
        print(f"{io:>9}: last.ckpt unloadable after {broken}/{args.trials} kills")


if __name__ == "__main__":
    main()

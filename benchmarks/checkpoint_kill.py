"""SIGKILL a process that keeps rewriting last.ckpt, many times, and count how often the file is left unloadable.

Compares Lightning's TorchCheckpointIO (temporary file in $TMPDIR, then a move) with AtomicCheckpointIO
(temporary file beside the target, then a rename). Put --tmpdir on another filesystem than --dir to
see the case of a node-local /tmp and checkpoints on shared storage:

    python benchmarks/checkpoint_kill.py --tmpdir /dev/shm --dir /var/tmp/checkpoint_kill --trials 20
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

WRITER = """
import sys, torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from scene_model.training.checkpoints import AtomicCheckpointIO
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
        rng = random.Random(0)
        args.dir.mkdir(parents=True, exist_ok=True)
        broken = 0
        for _ in range(args.trials):
            for leftover in args.dir.iterdir():
                leftover.unlink()
            broken += not trial(io, args.dir / "last.ckpt", args.megabytes * 2**18, args.tmpdir, rng)
        print(f"{io:>9}: last.ckpt unloadable after {broken}/{args.trials} kills")


if __name__ == "__main__":
    main()

"""Generate the synthetic DanceTrack-format data set (``scene_model.data.synthetic``) at a folder.

    python -m scene_model.tools.synthetic --root data/synthetic_dancetrack --seed 0

Every option not given is the run config's (``data.synthetic`` of conf/data/synthetic.yaml), so the
folder matches what ``python train.py`` would generate with the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic
from scene_model.tools.cli import ToolParser, tool_main
from scene_model.tools.compose import compose_run_config


def frame_size(text: str) -> list[int]:
    """A ``--size`` value: WIDTHxHEIGHT in pixels."""
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels, e.g. 384x216")
    return [int(width), int(height)]


@tool_main
def main(argv: list[str] | None = None) -> Path:
    parser = ToolParser(description=__doc__.split("\n\n")[0], prog="python -m scene_model.tools.synthetic")
    parser.add_output("--root", folder=True, required=True, help="directory to create")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-val", type=int, default=None)
    parser.add_argument("--num-test", type=int, default=None)
    parser.add_argument("--num-frames", type=int, default=None)
    parser.add_argument("--min-dancers", type=int, default=None)
    parser.add_argument("--max-dancers", type=int, default=None)
    parser.add_argument("--size", type=frame_size, action="append", help="WIDTHxHEIGHT, repeatable (default: the config's sizes)")
    args = parser.parse_args(argv)
    values = OmegaConf.to_container(compose_run_config().data.synthetic, resolve=True)
    given = {k: v for k, v in vars(args).items() if k not in ("root", "size") and v is not None}
    if args.size:
        given["sizes"] = args.size
    root = ensure_synthetic(args.root, SyntheticSpec.from_dict({**values, **given}))
    print(f"synthetic DanceTrack-format data set at {root}")
    return root


if __name__ == "__main__":
    main()

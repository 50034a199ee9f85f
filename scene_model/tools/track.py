"""Track a video file or a folder of images with a trained checkpoint.

    python -m scene_model.tools.track dance.mp4 --ckpt outputs/runs/.../checkpoints/last.ckpt --out tracks/

The model, the evaluation size, the windows and the tracker's options are those of the checkpoint's
run (``data.clip_len``, ``data.eval_size``, ``eval.tracker``), so the video is tracked exactly as
validation tracks a sequence; the tracker flags override the run's options. Writes ``OUT/<name>.txt``
(MOTChallenge rows in the source's pixels) and ``OUT/<name>.mp4`` (the source's frames with each
track's boxes in its colour and labelled with its id, same frame count and rate).

A mistake or a damaged input ends the command with one line on stderr naming it and exit status 1;
result files of an earlier run stay as they were. The output folder is checked before the
checkpoint is loaded; a video that ends or stops decoding before the frame count its container states
is an error unless ``--allow-short``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from scene_model.data.video import ShortVideoError, ShortVideoWarning, open_source
from scene_model.runtime.trained import load_trained
from scene_model.tools.cli import ToolParser, tool_main
from scene_model.tracking.options import TrackerOptions, add_tracker_flags, flag_values
from scene_model.tracking.sequence_tracker import SequenceTracker
from scene_model.tracking.track_source import TrackedSource, track_source


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags; ``--out`` is created and checked for writing here, before the checkpoint is loaded."""
    parser = ToolParser(prog="python -m scene_model.tools.track", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a video file (mp4, mkv, webm, avi, ...) or a folder of images")
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint written by train.py (its run config is inside)")
    parser.add_output("--out", folder=True, what="output folder", required=True, help="folder for <name>.txt and <name>.mp4")
    parser.add_device()
    parser.add_argument("--fps", type=float, default=None, help="frame rate of a folder of images (default: seqinfo.ini, else 25)")
    parser.add_argument("--no-video", action="store_true", help="write the result file only")
    parser.add_argument("--allow-short", action="store_true",
                        help="track a video that ends or stops decoding before the frame count its container "
                             "states (a cut file) as far as it decodes, with a warning, instead of stopping")
    parser.add_argument("--stride", type=int, default=None, help="a window every STRIDE frames (< data.clip_len; default: data.val_stride)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default: data.eval_batch_size)")
    add_tracker_flags(parser, "tracker (default: the checkpoint's eval.tracker)")
    return parser.parse_args(argv)


def show_short_video_once(shown: set[str]):
    """A ``warnings.showwarning`` that prints a ``ShortVideoWarning`` as one line (once: the video is decoded
    twice), above the progress bars, and hands every other warning to Python's."""
    python_showwarning = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, ShortVideoWarning):
            return python_showwarning(message, category, filename, lineno, file, line)
        if str(message) not in shown:
            shown.add(str(message))
            tqdm.write(f"{category.__name__}: {message}", file=sys.stderr)

    return show


@tool_main
def main(argv: list[str] | None = None) -> TrackedSource:
    args = parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_short_video_once(set())
            source = open_source(args.source, args.fps, allow_short=args.allow_short)
            run = load_trained(args.ckpt, args.device, "--ckpt")
            options = TrackerOptions.from_mapping(run.cfg.eval.tracker).replace(**flag_values(args))
            with run.module.cached_frames():  # the frame consecutive windows share is encoded once
                done = track_source(
                    source, run.module.predict, run.module.association, run.datamodule, SequenceTracker(options), args.out,
                    video=not args.no_video, stride=args.stride, batch_size=args.batch_size,
                )
    except ShortVideoError as err:
        raise ShortVideoError(f"{err}; --allow-short tracks the frames decoded") from None
    per_frame = 1000 * done.seconds / done.frames
    written = ", ".join(str(p) for p in (done.results, done.video) if p is not None)
    print(f"{done.name}: {done.frames} frames, {done.tracks} tracks, {done.boxes} boxes in {done.seconds:.1f} s "
          f"({per_frame:.0f} ms/frame) -> {written}")
    return done


if __name__ == "__main__":
    main()

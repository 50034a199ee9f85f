"""``python -m scene_model.tools.track``: milliseconds per frame of tracking a sequence (decoding its
frames, windows, the model, linking, writing the results; no mp4) against the model's forward alone
over the same windows, in one run.

The sequence is the default data set's first val sequence, read as a folder of images; the model is
the default config's (untrained: the forward costs the same), run as the tool runs it (each frame
encoded once, in the machine's precision). The forward alone is timed on the same windows collated
beforehand, so the difference is what the tool adds around the model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bench import Row
from bench._measure import interleaved_seconds
from bench._training import run_config
from scene_model.data.video import open_source
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.tracking.sequence_tracker import SequenceTracker
from scene_model.tracking.stream import stream_windows
from scene_model.tracking.track_source import track_source


def run(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench_track_") as tmp:
        cfg = run_config([], Path(tmp) / "run")
        loader = ConfigLoader(cfg)
        data = loader.build_datamodule()
        data.prepare_data()
        module = loader.build_lit_module().eval()
        folder = data.eval_split().sequences[0].info.directory / "img1"
        source = open_source(folder, fps=20)
        geometry = data.eval_transform.plan(source.info.width, source.info.height)
        pixels = list(source.frames(geometry))
        frames = len(pixels)
        batches = list(
            stream_windows(pixels, source.info.name, (source.info.height, source.info.width), data.clip_len, data.val_stride,
                           data.eval_transform, geometry, data.eval_batch_size)
        )
        rounds = 2 if quick else 4
        done = []

        def forward_alone() -> None:
            with module.cached_frames():
                for batch in batches:
                    module.predict(batch)

        def tool() -> None:
            with module.cached_frames():
                done.append(track_source(open_source(folder, fps=20), module.predict, module.association, data, SequenceTracker(), Path(tmp) / "out",
                                         video=False, progress=False))

        forward_alone(), tool()  # warm-up: every batch shape once
        seconds = interleaved_seconds({"forward": forward_alone, "tool": tool}, rounds)
    assert done[-1].frames == frames
    forward_ms, tool_ms = (1000 * seconds[name] / (rounds * frames) for name in ("forward", "tool"))
    note = f"{source.info.name}, {frames} frames, {rounds} rounds taking turns, {torch.get_num_threads()} torch threads"
    return [
        Row("track", "tools.track: ms per frame (no mp4)", tool_ms, "ms", note),
        Row("track", "model forward alone: ms per frame", forward_ms, "ms", "the same windows, collated beforehand"),
        Row("track", "tools.track / forward alone", tool_ms / forward_ms, "x", "what the tool adds around the model"),
    ]

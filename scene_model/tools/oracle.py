"""Ground truth as window predictions: the tracker's ceiling, and the model quality a HOTA needs.

``oracle_predict`` answers each window with its ground truth in the model's output format, query
slots drawn per window (a real model's slots carry no identity across windows), optionally degraded:
box jitter (a fraction of the box size, drawn per frame) and missed boxes (existence 0). Where its
object has no box, a query keeps the nearest box of the window, like a model following an occluded
object. Tracked through the real ``SequenceTracker`` (windows linked by IoU and height, ``association=iou``:
ground truth carries no learned features) and scored with TrackEval:

    python -m scene_model.tools.oracle data/synthetic_dancetrack --jitter 0 0.05 0.1 0.2 --miss 0 0.1
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from hydra.errors import HydraException
from omegaconf import OmegaConf
from torch import Tensor

from scene_model.association.iou import IouLink
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.config_validation import validate_config
from scene_model.tools.cli import ToolParser, tool_main
from scene_model.tools.compose import compose_run_config, use_data_on_disk
from scene_model.tracking.options import add_tracker_flags, flag_values
from scene_model.tracking.scoring import score_tracks
from scene_model.tracking.sequence_tracker import Predict, SequenceTracker, check_overlap
from scene_model.tracking.trackeval_metrics import HEADLINE


def oracle_predict(
    num_queries: int, shuffle: bool = True, jitter: float = 0.0, miss: float = 0.0, seed: int = 0
) -> Predict:
    generator = torch.Generator().manual_seed(seed)

    def predict(batch: SceneBatch) -> dict[str, Tensor]:
        batch_size, num_frames = batch.padding_mask.shape
        center = torch.full((batch_size, num_frames, num_queries, 2), 0.5)
        size = torch.full((batch_size, num_frames, num_queries, 2), 1e-3)
        exist = torch.zeros(batch_size, num_frames, num_queries, 1)
        for b in range(batch_size):
            ids = sorted({int(i) for frame in batch.targets[b] for i in frame.track_ids})
            if len(ids) > num_queries:
                raise ValueError(f"{len(ids)} objects in a window of {batch.sequence_ids[b]}: more than {num_queries} queries")
            slots = torch.randperm(num_queries, generator=generator) if shuffle else torch.arange(num_queries)
            slot_of = {track_id: int(slots[k]) for k, track_id in enumerate(ids)}
            for t, frame in enumerate(batch.targets[b]):
                for k, track_id in enumerate(frame.track_ids.tolist()):
                    q = slot_of[track_id]
                    center[b, t, q], size[b, t, q], exist[b, t, q] = frame.center[k], frame.size[k], 1.0
            present = exist[b, :, :, 0] > 0
            for q in present.any(0).nonzero().flatten().tolist():
                seen = present[:, q].nonzero().flatten()
                for t in (~present[:, q]).nonzero().flatten().tolist():
                    nearest = seen[(seen - t).abs().argmin()]
                    center[b, t, q], size[b, t, q] = center[b, nearest, q], size[b, nearest, q]
        if jitter > 0:
            center = center + jitter * size * torch.randn(size.shape, generator=generator)
            size = (size * (1 + jitter * torch.randn(size.shape, generator=generator))).clamp(min=1e-3)
        if miss > 0:
            exist = exist * (torch.rand(exist.shape, generator=generator) >= miss)
        return {
            "bbox_center": center,
            "bbox_size": size,
            "cls_logits": torch.full((batch_size, num_frames, num_queries, 1), 20.0),
            "exist_conf": exist,
        }

    return predict


@tool_main
def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="python -m scene_model.tools.oracle", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="data root in the DanceTrack layout")
    parser.add_argument("--split", default="val")
    parser.add_argument("--jitter", type=float, nargs="+", default=[0.0], help="box noise, fraction of the box size")
    parser.add_argument("--miss", type=float, nargs="+", default=[0.0], help="fraction of boxes missed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", nargs="+", default=[], metavar="KEY=VALUE",
                        help="data options of the run config, e.g. clip_len=5 val_stride=2 (default: conf/data/synthetic.yaml's)")
    add_tracker_flags(parser, "tracker (default: eval.tracker of the run config)")
    args = parser.parse_args(argv)
    try:
        cfg = compose_run_config(["data.num_workers=0"] + [f"data.{kv}" for kv in args.data])
    except HydraException as err:  # a key the data config does not have, a value Hydra cannot parse
        raise ConfigError(f"--data: {str(err).splitlines()[0]}") from None
    use_data_on_disk(cfg, args.root)
    validate_config(OmegaConf.masked_copy(cfg, ["data"]))  # a value of the wrong type or out of range, named by its key
    datamodule = ConfigLoader(cfg).build_datamodule()
    split = datamodule.eval_split(args.split)
    check_overlap(datamodule.clip_len, datamodule.val_stride)
    tracker = SequenceTracker(OmegaConf.to_object(cfg.eval.tracker).replace(**flag_values(args)))
    batches = list(datamodule.eval_windows(split))  # decoded once for every setting
    print(f"{'jitter':>7}{'miss':>6}" + "".join(f"{c:>8}" for c in HEADLINE))
    for jitter, miss in itertools.product(args.jitter, args.miss):
        predict = oracle_predict(cfg.model.num_queries, jitter=jitter, miss=miss, seed=args.seed)
        combined = score_tracks(tracker.track(predict, batches, list(split.lengths), IouLink()), split).combined
        cells = (f"{combined[c]:8.0f}" if c == "IDSW" else f"{combined[c]:8.1f}" for c in HEADLINE)
        print(f"{jitter:7.2f}{miss:6.2f}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()

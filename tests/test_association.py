"""Association, one concept (conf/association): each mechanism's loss, its identities through a crossing,
and every option through training and tracking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from torch import Tensor

from scene_model.association.embeddings import link_loss
from scene_model.association.iou import IouLink
from scene_model.association.track_queries import TrackQueries
from scene_model.data.types import SceneBatch, TargetFrame
from scene_model.errors import ConfigError
from scene_model.models.scene_model import CarriedQueries
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.tracking import SequenceTracker, TrackerOptions
from scene_model.tracking.linker import TrackLinker
from tests.conftest import compose_config

OPTIONS = ("iou", "embeddings", "track_queries", "id_decoder")
EXACT = TrackerOptions(smooth_sigma=0.0, interpolate=False)


def association(name: str, **changes):
    """The association of ``conf/association/<name>.yaml`` with ``changes``, built directly."""
    node = OmegaConf.to_container(compose_config([f"association={name}"]).association, resolve=True)
    return build_node({**node, **changes})


def build_node(node: dict):
    from hydra.utils import get_object

    return get_object(node.pop("_target_"))(**node)


# --- the config group ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPTIONS)
def test_each_option_composes_and_builds_with_the_chain_it_needs(name, tmp_path):
    cfg = compose_config([f"association={name}", "data.root=/tmp/anywhere"], tmp_path)
    built = ConfigLoader(cfg)
    assert built.chain_len() == (1 if name == "iou" else int(cfg.association.chain_len))
    assert type(association(name)).__name__ == {"iou": "IouLink", "embeddings": "LinkEmbeddings",
                                                "track_queries": "TrackQueries", "id_decoder": "IdDecoder"}[name]


def test_the_keys_of_the_old_mechanisms_do_not_compose_and_a_mechanism_holds_only_its_own():
    for old in ("model.track_queries=true", "model.link_dim=64", "data.chain_len=2", "head.track_drop=0.2", "head.link_weight=1"):
        with pytest.raises(ConfigCompositionException, match="Could not override"):
            compose_config([old])
    with pytest.raises(ConfigCompositionException, match="association.chain_len"):
        compose_config(["association.chain_len=2"])  # iou trains on single windows: it has no chain
    with pytest.raises(ConfigCompositionException, match="association.link_dim"):
        compose_config(["association=id_decoder", "association.link_dim=8"])


@pytest.mark.parametrize("name", ["embeddings", "track_queries", "id_decoder"])
def test_a_learned_association_refuses_single_windows(name):
    with pytest.raises(ConfigError, match=r"association.chain_len=1: .*expected 2 or more"):
        association(name, chain_len=1)


# --- losses over a chain ---------------------------------------------------------------------------------
def test_link_loss_is_low_when_the_embeddings_tell_the_tracks_apart_and_high_when_they_swap_them():
    before = F.normalize(torch.eye(4)[None, :3], dim=-1)  # three queries, one direction each
    assigned_before = torch.tensor([[5, 7, -1]])
    right = before[:, [1, 0, 2]]  # the next window's queries in another order, same tracks
    assigned_after = torch.tensor([[7, 5, -1]])
    assert link_loss(before, assigned_before, right, assigned_after) < 0.01
    assert link_loss(before, assigned_before, before[:, [0, 1, 2]], assigned_after) > 5.0
    assert link_loss(before, torch.tensor([[5, -1, -1]]), right, torch.tensor([[6, -1, -1]])) == 0.0  # nothing shared


def test_carried_queries_in_training_follow_present_tracks_drop_some_and_add_a_false_one():
    queries = association("track_queries")
    assigned = torch.tensor([[0, -1, 1, -1, 2], [-1, 1, -1, -1, -1]])
    present = torch.tensor([[True, True, False], [True, True, True]])
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.9, 0.4]])
    keep, track = queries.kept(assigned, present, scores, detect=4, train=False)
    assert keep.tolist() == [[True, False, True, False, False], [False, True, False, False, False]]
    assert track.tolist() == [[0, -1, 1, -1, -1], [-1, 1, -1, -1, -1]]  # track 2 is not in the window: let go
    queries.drop, queries.false_positive = 1.0, 1.0
    keep, _ = queries.kept(assigned, present, scores, detect=4, train=True)
    assert keep.tolist() == [[False, True, False, False, False], [False, False, False, True, False]]  # only the best free detect query


def test_carry_packs_the_kept_queries_in_order_with_their_last_frame_box():
    queries = association("track_queries", d_model=8)
    out = {"hidden": torch.randn(2, 3, 6, 8), "bbox_center": torch.rand(2, 3, 6, 2), "bbox_size": torch.rand(2, 3, 6, 2)}
    keep = torch.zeros(2, 6, dtype=torch.bool)
    keep[0, [4, 1]] = True
    keep[1, 3] = True
    with torch.no_grad():
        carried = queries.carry(out, torch.tensor([2, 1]), keep)
    assert carried.source.tolist() == [[1, 4], [3, 0]] and carried.padding.tolist() == [[False, False], [False, True]]
    assert torch.equal(carried.boxes[0, 1], torch.cat([out["bbox_center"][0, 2, 4], out["bbox_size"][0, 2, 4]]))
    assert torch.allclose(carried.content[0, 0], queries.update(out["hidden"][0, 2, 1]), atol=1e-6)


def test_occlusion_hides_spans_of_tracks_and_switch_trades_features_within_a_window_only():
    decoder = association("id_decoder", d_model=8, dim=8, heads=2, occlusion=1.0, switch=1.0, chain_len=4)
    track = torch.tensor([[[0, 1, -1], [1, 0, -1], [0, -1, 1], [1, 0, -1]]])  # [B=1, C=4, N=3]
    torch.manual_seed(0)
    hidden = decoder._occluded(track, 4)
    assert not hidden[track < 0].any()
    for t in (0, 1):  # each track is hidden on one contiguous span of windows
        windows = [k for k in range(4) if hidden[0, k][track[0, k] == t].any()]
        assert windows and windows == list(range(windows[0], windows[-1] + 1))
    tokens = torch.arange(12.0).view(1, 4, 3, 1).expand(-1, -1, -1, 8)
    present = track >= 0
    switched = decoder._switched(tokens, present)
    for k in range(4):  # the present tokens of a window trade among themselves, the others stay
        assert sorted(switched[0, k, present[0, k], 0].tolist()) == sorted(tokens[0, k, present[0, k], 0].tolist())
        assert torch.equal(switched[0, k, ~present[0, k]], tokens[0, k, ~present[0, k]])
    assert not torch.equal(switched, tokens)


def toy_chains(batch: int, windows: int, queries: int, dim: int, generator: torch.Generator) -> tuple[list[Tensor], list[Tensor]]:
    """Chains of windows where each of 3 tracks has an appearance of its own (a random unit vector plus a
    little noise per window) in a random query slot: identity is in the features only."""
    appearance = F.normalize(torch.randn(batch, 3, dim, generator=generator), dim=-1)
    tokens, tracks = [], []
    for _ in range(windows):
        slots = torch.stack([torch.randperm(queries, generator=generator) for _ in range(batch)])  # [B, N]
        track = torch.where(slots < 3, slots, -1)
        feature = torch.randn(batch, queries, dim, generator=generator) * 0.5
        own = torch.gather(appearance, 1, track.clamp(min=0)[..., None].expand(-1, -1, dim))
        tokens.append(torch.where((track >= 0)[..., None], own + 0.05 * feature, feature))
        tracks.append(track)
    return tokens, tracks



@pytest.mark.parametrize("name", ["embeddings", "id_decoder"])
def test_a_learned_association_s_loss_falls_on_a_tiny_chain_set(name):
    """Trained on its own over fixed chains, the mechanism's loss falls well below where it starts."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    if name == "id_decoder":
        model = association("id_decoder", d_model=16, dim=16, heads=2, layers=1, vocabulary=8, occlusion=0.0, switch=0.0)
        tokens, tracks = toy_chains(8, 3, 5, 16, generator)
        loss_of = lambda: model.chain_loss([model.token_norm(t) for t in tokens], tracks, augment=False)  # noqa: E731
    else:
        model = association("embeddings", d_model=16, link_dim=8)
        tokens, tracks = toy_chains(8, 2, 5, 16, generator)
        loss_of = lambda: link_loss(model.embed(tokens[0]), tracks[0], model.embed(tokens[1]), tracks[1])  # noqa: E731
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(loss_of().detach())
    for _ in range(150):
        loss = loss_of()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss_of().detach()) < 0.3 * first


def test_the_association_s_gradients_are_clipped_apart_from_the_model_s(tiny_cfg):
    """A fresh association's large gradients do not take the whole clipped norm from the detector."""
    module = ConfigLoader(tiny_cfg("association=embeddings")).build_lit_module()
    optimizer = torch.optim.SGD(module.parameter_groups(), lr=0.1)
    for p in module.parameters():
        p.grad = torch.ones_like(p) * (100.0 if any(p is q for q in module.association.parameters()) else 0.01)
    own = list(module.association.parameters())
    model = [p for p in module.model.parameters()]
    before = torch.nn.utils.get_total_norm([p.grad for p in model])
    module.configure_gradient_clipping(optimizer, gradient_clip_val=0.1, gradient_clip_algorithm="norm")
    assert torch.nn.utils.get_total_norm([p.grad for p in own]) == pytest.approx(0.1, rel=1e-3)
    after = torch.nn.utils.get_total_norm([p.grad for p in model])
    assert after == pytest.approx(min(float(before), 0.1), rel=1e-3)  # clipped by its own norm only


# --- identities through a crossing --------------------------------------------------------------------------
def box(x: float) -> list[float]:
    return [x, 20.0, x + 20.0, 60.0]


def crossing_windows() -> list[tuple[np.ndarray, Tensor, Tensor]]:
    """Dancer a moves right (x = 10, 20, 30, 40, 50 on frames 1-5), b moves left (50 ... 10); they meet
    on frame 3, which the two windows share, where the second window's boxes of a and b are each a
    little on the other's side: on IoU alone each old track takes the other dancer's new query.
    (frames, boxes [T, 2, 4] xyxy, scores [T, 2]); the first window's queries in slots (a, b), the
    second's in (b, a)."""
    first = torch.tensor([[box(10), box(50)], [box(20), box(40)], [box(29), box(31)]])
    second = torch.tensor([[box(29), box(31)], [box(20), box(40)], [box(10), box(50)]])
    scores = torch.full((3, 2), 0.9)
    return [(np.array([1, 2, 3]), first, scores), (np.array([3, 4, 5]), second, scores)]


KEPT, SWAPPED = {50: 1, 10: 2}, {50: 2, 10: 1}  # frame 5: a (x = 50) keeps id 1 / takes b's


def ids_at(rows: np.ndarray, frame: int) -> dict[int, int]:
    """{left x: id} of the rows of one frame."""
    return {round(r[2]): int(r[1]) for r in rows if r[0] == frame}


def link_crossing(mechanism, features: tuple[Tensor, Tensor] | None = None) -> dict[int, int]:
    linker = TrackLinker(TrackerOptions(height_scale=0.0, nms_iou=1.0, link_iou=0.0), mechanism)
    steps = [linker.step(*w, features=f) for w, f in zip(crossing_windows(), features or (None, None), strict=True)]
    return ids_at(np.concatenate(steps), 5)


def test_on_iou_alone_the_crossing_swaps_the_ids():
    """The scene of the crossing tests is really ambiguous for IoU: it hands each track the other dancer."""
    assert link_crossing(IouLink()) == SWAPPED


def test_with_link_embeddings_the_learned_affinity_decides_the_crossing():
    """Embeddings that say which new query is which dancer keep the ids; embeddings that say the
    opposite swap them."""
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    first = torch.cat([torch.stack([a, b])] * 2, dim=-1)  # [2 queries, first-frame e + last-frame e]
    for second, expected in (((b, a), KEPT), ((a, b), SWAPPED)):
        features = (first, torch.cat([torch.stack(second)] * 2, dim=-1))
        assert link_crossing(association("embeddings", link_dim=2), features) == expected


def test_the_id_decoder_learns_identity_from_its_context_and_keeps_it_through_the_crossing():
    """Trained on chains whose tracks differ only in appearance, the decoder links the crossing by
    appearance: the ids follow the features, whichever query slot or box they come in."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    decoder = association("id_decoder", d_model=16, dim=16, heads=2, layers=1, vocabulary=8, occlusion=0.0, switch=0.0,
                          id_threshold=0.5)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    for _ in range(200):
        tokens, tracks = toy_chains(16, 3, 5, 16, generator)
        loss = decoder.chain_loss(tokens, tracks, augment=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoder.eval()
    a, b = (F.normalize(torch.randn(16, generator=generator), dim=0) for _ in range(2))
    first = torch.stack([a, b])
    assert link_crossing(decoder, (first, torch.stack([b, a]))) == KEPT
    assert link_crossing(decoder, (first, torch.stack([a, b]))) == SWAPPED


class FollowingModel:
    """A model whose detect queries see both dancers of the crossing (one query each, in shuffled slots)
    and whose carried queries follow the dancer their content names, wherever its box is."""

    def __init__(self, detect: int = 4) -> None:
        self.detect = detect
        self.generator = torch.Generator().manual_seed(0)

    def predict(self, batch: SceneBatch, tracks: CarriedQueries | None = None) -> dict:
        frames = batch.frame_indices[0].tolist()
        carried = [] if tracks is None else [int(c) for c, pad in zip(tracks.content[0, :, 0], tracks.padding[0], strict=True) if not pad]
        total = self.detect + (tracks.content.shape[1] if tracks is not None else 0)
        boxes = torch.full((1, len(frames), total, 4), 0.5)
        boxes[..., 2:] = 0.01
        exist = torch.zeros(1, len(frames), total, 1)
        hidden = torch.full((1, len(frames), total, 1), -1.0)
        slots = torch.randperm(self.detect, generator=self.generator)
        placed = [(int(slots[0]), 0), (int(slots[1]), 1)] + [(self.detect + k, dancer) for k, dancer in enumerate(carried)]
        for q, dancer in placed:
            boxes[0, :, q] = torch.tensor([normalised(dancer, f) for f in frames])
            exist[0, :, q], hidden[0, :, q] = 0.9, dancer
        return {"bbox_center": boxes[..., :2], "bbox_size": boxes[..., 2:], "exist_conf": exist, "hidden": hidden}


def normalised(dancer: int, frame: int) -> list[float]:
    """(cx, cy, w, h) in 0..1 of a 100-pixel canvas of the boxes of ``crossing_windows``."""
    x = 10 + 10 * (frame - 1) if dancer == 0 else 50 - 10 * (frame - 1)
    return [(x + 10) / 100, 0.4, 0.2, 0.4]


def window_batch(frames: list[int]) -> SceneBatch:
    return SceneBatch(
        frames=torch.zeros(1, len(frames), 3, 100, 100), targets=[[TargetFrame.empty(f) for f in frames]],
        padding_mask=torch.zeros(1, len(frames), dtype=torch.bool), sequence_ids=["seq"],
        frame_indices=torch.tensor([frames]), orig_sizes=torch.tensor([[100, 100]]), image_sizes=torch.tensor([[100, 100]]),
    )


def carried_queries_association() -> TrackQueries:
    """The real mechanism (packing, ids, NMS priority) with its content update left out, so that the toy
    model reads which dancer a carried query follows."""
    queries = association("track_queries", d_model=1)
    queries.update = torch.nn.Identity()
    return queries


def test_track_queries_keep_ids_through_a_crossing_and_duplicates_start_nothing():
    batches = [window_batch(w) for w in ([1, 2, 3], [3, 4, 5])]
    rows = SequenceTracker(EXACT).track(FollowingModel().predict, batches, ["seq"], carried_queries_association())["seq"]
    assert ids_at(rows, 1) == {10: 1, 50: 2} and ids_at(rows, 5) == KEPT  # one id each, though the detect queries saw both
    assert sorted(set(rows[:, 0].astype(int))) == [1, 2, 3, 4, 5] and len(rows) == 10


def test_two_windows_of_one_sequence_in_one_batch_are_refused_when_queries_are_carried():
    one = window_batch([1, 2, 3])
    two = SceneBatch(
        frames=torch.zeros(2, 3, 3, 100, 100), targets=one.targets * 2, padding_mask=torch.zeros(2, 3, dtype=torch.bool),
        sequence_ids=["seq", "seq"], frame_indices=torch.tensor([[1, 2, 3], [3, 4, 5]]),
        orig_sizes=torch.tensor([[100, 100]] * 2), image_sizes=torch.tensor([[100, 100]] * 2),
    )
    with pytest.raises(ValueError, match="two windows of one sequence"):
        SequenceTracker(EXACT).track(FollowingModel().predict, [two], ["seq"], carried_queries_association())


# --- every option through training and tracking -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", OPTIONS)
def test_every_option_trains_on_chains_tracks_the_val_split_and_its_checkpoint_tracks_the_same(name, tiny_cfg, tmp_path):
    from scene_model.runtime.checkpoints import load_checkpoint_file
    from scene_model.runtime.run import train

    scoring = ["eval.tracker.start_threshold=0.0", "eval.tracker.keep_threshold=0.0", "trainer.limit_val_batches=1.0",
               "optimized_metric=val/track/HOTA"]
    fit = tiny_cfg(f"association={name}", *scoring)
    fitted = train(fit)
    run = Path(fit.paths.output_dir)
    assert fitted is not None and (run / "tracking" / "val_metrics.json").is_file()
    checkpoint = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    own = [k for k in checkpoint["state_dict"] if k.startswith("association.")]
    assert bool(own) == (name != "iou")  # a learned mechanism's parameters are the checkpoint's
    ckpt = tmp_path / "last.ckpt"
    (run / "checkpoints" / "last.ckpt").rename(ckpt)
    again = tiny_cfg(f"association={name}", "train=false", f"ckpt_path={ckpt}", *scoring, "eval.submit_split=null")
    assert train(again) == pytest.approx(fitted, abs=1e-5)

"""Offline track clean-up: gap interpolation and temporal smoothing of result rows."""

from __future__ import annotations

import numpy as np

from scene_model.tracking.track_postprocess import interpolate_gaps, smooth_tracks


def rows(track: int, frames, left) -> np.ndarray:
    """Rows (frame, id, left, top, width, height, score) of one track, 10x20 boxes at top 5."""
    frames, left = np.asarray(frames, float), np.asarray(left, float)
    n = len(frames)
    return np.stack([frames, np.full(n, track), left, np.full(n, 5.0), np.full(n, 10.0), np.full(n, 20.0), np.full(n, 0.9)], 1)


def by_frame(result: np.ndarray, track: int) -> np.ndarray:
    own = result[result[:, 1] == track]
    return own[np.argsort(own[:, 0])]


def test_a_gap_is_filled_on_the_line_between_its_ends_and_tracks_stay_apart():
    a = rows(1, [1, 2, 6], [0.0, 2.0, 10.0])  # frames 3-5 missing
    b = rows(2, [1, 7], [100.0, 100.0])  # another track's gap is its own
    result = interpolate_gaps(np.concatenate([a, b]))
    one = by_frame(result, 1)
    np.testing.assert_array_equal(one[:, 0], [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(one[:, 2], [0, 2, 4, 6, 8, 10])
    two = by_frame(result, 2)
    np.testing.assert_array_equal(two[:, 0], [1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_allclose(two[:, 2], 100.0)
    assert len(interpolate_gaps(a[:2])) == 2  # nothing missing: nothing added


def test_smoothing_keeps_constant_speed_and_damps_jitter():
    frames = np.arange(1, 31)
    steady = rows(1, frames, 3.0 * frames)
    np.testing.assert_allclose(by_frame(smooth_tracks(steady, 1.5), 1), steady, atol=1e-9)
    noise = np.random.default_rng(0).normal(0, 2.0, len(frames))
    jittery = rows(1, frames, 3.0 * frames + noise)
    smoothed = by_frame(smooth_tracks(jittery, 1.5), 1)
    assert np.abs(smoothed[:, 2] - 3.0 * frames).mean() < 0.6 * np.abs(noise).mean()
    np.testing.assert_allclose(smoothed[:, [0, 1, 3, 4, 5, 6]], jittery[:, [0, 1, 3, 4, 5, 6]], atol=1e-9)


def test_smoothing_stays_inside_runs_of_consecutive_frames():
    """A jump across a gap (the track was not interpolated) is not blurred into the frames on either side."""
    track = rows(1, [1, 2, 3, 4, 20, 21, 22, 23], [0, 0, 0, 0, 50, 50, 50, 50])
    np.testing.assert_allclose(smooth_tracks(track, 2.0)[:, 2], track[:, 2])
    assert smooth_tracks(track, 0.0) is track


def test_short_runs_keep_constant_speed_and_stay_inside_their_extent():
    """A run shorter than the kernel (3 frames at sigma 2): the padding repeats its reflection."""
    steady = rows(1, [1, 2, 3], [0.0, 4.0, 8.0])
    np.testing.assert_allclose(smooth_tracks(steady, 2.0), steady, atol=1e-9)
    jump = rows(1, [1, 2, 3, 4], [0.0, 0.0, 0.0, 90.0])
    jump[:, 4] = [2.0, 2.0, 2.0, 30.0]  # width jumps too
    out = smooth_tracks(jump, 2.0)
    assert (out[:, 4:6] >= 0).all()
    assert (out[:, 2] >= 0).all() and (out[:, 2] + out[:, 4] <= (jump[:, 2] + jump[:, 4]).max() + 1e-9).all()

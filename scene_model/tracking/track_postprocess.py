"""Offline clean-up of linked tracks, applied to a whole sequence's result rows.

The linker keeps a track's id through up to ``max_lost`` frames without a written box (an occlusion, a
window whose query scored below ``keep_threshold``); ``interpolate_gaps`` writes the boxes of those
frames by linear interpolation between the frames on either side, as ByteTrack's and StrongSORT's
offline post-processing does. ``smooth_tracks`` low-passes each track's box coordinates over time
with a Gaussian (frame-wise predictions jitter; dancers move smoothly), extended at the ends by point
reflection so that a track moving at constant speed is left unchanged (and the first and last box of
a run keep their place).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

BOX = slice(2, 6)  # left, top, width, height in RESULT_COLUMNS


def interpolate_gaps(rows: np.ndarray) -> np.ndarray:
    """rows float[N, 7] (frame, id, left, top, width, height, score) of one sequence -> the same rows
    plus, for every frame missing inside a track (between its first and last frame), a row linearly
    interpolated from the nearest written frames on either side (box and score)."""
    parts = [rows]
    for track in np.unique(rows[:, 1]):
        own = rows[rows[:, 1] == track]
        own = own[np.argsort(own[:, 0])]
        frames = own[:, 0]
        missing = np.setdiff1d(np.arange(frames[0], frames[-1] + 1), frames)
        if len(missing) == 0:
            continue
        filled = np.empty((len(missing), rows.shape[1]))
        filled[:, 0], filled[:, 1] = missing, track
        for column in range(2, rows.shape[1]):
            filled[:, column] = np.interp(missing, frames, own[:, column])
        parts.append(filled)
    return np.concatenate(parts)


def smooth_tracks(rows: np.ndarray, sigma: float) -> np.ndarray:
    """rows float[N, 7] of one sequence with each track's boxes smoothed over time by a Gaussian of
    ``sigma`` frames, within each run of consecutive frames (0: unchanged)."""
    if sigma <= 0 or len(rows) == 0:
        return rows
    rows = rows.copy()
    for track in np.unique(rows[:, 1]):
        index = np.flatnonzero(rows[:, 1] == track)
        index = index[np.argsort(rows[index, 0])]
        runs = np.split(index, np.flatnonzero(np.diff(rows[index, 0]) != 1) + 1)
        for run in runs:
            if len(run) > 2:
                rows[run, BOX] = _smooth(rows[run, BOX], sigma)
    return rows


def _smooth(boxes: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian along axis 0 of (left, top, width, height) rows, padded by point reflection (odd
    reflection, repeated when the run is shorter than the kernel): linear trends pass unchanged.
    The result stays inside the run's own extent (no box grows past the image or gets a negative
    size, which odd reflection could otherwise cause next to a sudden change)."""
    radius = int(4 * sigma + 0.5)  # gaussian_filter1d's kernel radius at its default truncate=4
    padded = np.pad(boxes, ((radius, radius), (0, 0)), mode="reflect", reflect_type="odd")
    smoothed = gaussian_filter1d(padded, sigma, axis=0, mode="nearest")[radius : radius + len(boxes)]
    corners = np.concatenate([smoothed[:, :2], smoothed[:, :2] + smoothed[:, 2:]], axis=1)
    raw = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    low = np.tile(raw[:, :2].min(0), 2)
    high = np.tile(raw[:, 2:].max(0), 2)
    corners = np.clip(corners, low, high)
    return np.concatenate([corners[:, :2], np.maximum(corners[:, 2:] - corners[:, :2], 0.0)], axis=1)

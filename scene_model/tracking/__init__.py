"""Tracking: clip-to-sequence inference, window linking, MOTChallenge result files, TrackEval metrics."""

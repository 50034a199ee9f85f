"""Command-line tools above training and tracking: they build a run's parts from a checkpoint's config
(``threshold_sweep``) or feed the tracker ground truth (``oracle``).

    python -m scene_model.tools.threshold_sweep CKPT --start 0.5 0.3 --keep 0.1
    python -m scene_model.tools.oracle ROOT --jitter 0 0.1 --miss 0 0.1
"""

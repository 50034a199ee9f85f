"""Optuna search helpers, named by conf/hparams_search/optuna.yaml (needs the ``search`` extra)."""

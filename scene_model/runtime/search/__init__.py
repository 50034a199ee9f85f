"""The Optuna search behind ``hydra/sweeper: scene_model_optuna`` (hydra_plugins/scene_model_sweeper):
the search space, the storages, the study, the ask-launch-tell loop and a trial's reports (needs the
``search`` extra)."""

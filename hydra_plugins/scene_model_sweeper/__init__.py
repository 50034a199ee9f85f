"""The project's Hydra sweeper: an Optuna search whose trials can be pruned (``hydra/sweeper: scene_model_optuna``)."""

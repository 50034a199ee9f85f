"""Training: matching, losses, denoising, the Lightning module, callbacks, ConfigLoader."""

"""What learns: matching, losses and denoising (``HeadAdapter``), the Lightning module, schedules,
precision, and the callbacks of training and validation."""

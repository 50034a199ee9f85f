"""What runs a process: the way of one run (``run.train``), building it from the config
(``ConfigLoader``) and checking the config first, run directories, signals, ranks, the console,
threads, SLURM, checkpoint files, refused writes, loading a trained model, and the search."""

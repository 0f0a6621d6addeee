"""Training: a run's phases, its driver, its directory, the dataset's split, sweeps, the report."""

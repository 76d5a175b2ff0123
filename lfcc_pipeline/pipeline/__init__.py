"""Configuration, runner, manifest, atomic writes, locking, environment probe, torch.distributed."""

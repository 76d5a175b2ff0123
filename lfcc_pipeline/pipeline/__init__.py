"""The runner: what to run, manifest and fingerprints, stage registry, environment probe."""

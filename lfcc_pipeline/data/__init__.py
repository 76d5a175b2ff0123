"""Datasets, data specs, batches, device-side transforms and the preprocessing contract."""

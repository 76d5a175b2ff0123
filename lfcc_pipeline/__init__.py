"""lfcc-pipeline: distill a heterogeneous teacher into a compact student and deploy it."""

__version__ = "0.1.0"

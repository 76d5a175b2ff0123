"""Experiment tracking: a small writer interface (base.py) and its TensorBoard backend (tensorboard.py).

A library floor beside calib and models, importing only core: training writes its curves through it,
the bench stage its report. Tracking never fails a run: a backend that raises is switched off with
one warning line."""

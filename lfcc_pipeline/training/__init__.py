"""Training and evaluation loops shared by the teacher and distill stages."""

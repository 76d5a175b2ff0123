"""The pipeline's stages, one module each; they never import each other and meet only through the
run directory's artifacts (core/layout.py). Their order is the runner's registry (pipeline/registry.py)."""

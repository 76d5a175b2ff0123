"""`python -m lfcc_pipeline` is the same CLI as `lfcc-pipeline` (torchrun launches it this way)."""

from lfcc_pipeline.cli import main

if __name__ == "__main__":
    main()

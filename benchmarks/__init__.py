"""MicroEmo's benchmarks: one harness (``python -m benchmarks``) over the scripts of this folder."""

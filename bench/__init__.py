"""The hub's benchmark: `python bench/run.py` (see bench/README.md)."""

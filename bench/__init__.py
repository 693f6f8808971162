"""Benchmarks and stress tools, each runnable as `python -m bench.<name>` from the project root."""

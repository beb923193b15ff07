"""Benchmarks that ship with the tool: ``python -m ops.bench <queue|all>``."""

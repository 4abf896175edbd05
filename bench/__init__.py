"""Benchmarks of handoff against same-run baselines: `python -m bench [--quick]`."""

"""Benchmarks: tools that time and size the library (`foryou bench ...`), not library code."""

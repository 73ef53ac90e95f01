"""Speed benchmarks for curate: `python -m bench.run [--quick] [--only NAME]` (see bench/README.md)."""

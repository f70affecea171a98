"""Benchmarks of the pipeline: scale (bench_scale), DVC and remotes (bench_pipeline), both (bench)."""

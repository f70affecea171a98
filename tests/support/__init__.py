"""Helpers shared by the tests and the benchmarks: fixtures data, servers, repositories.

Test modules import from here, never from each other; benchmarks import from here too."""

"""ltbench: a benchmark harness for long-tailed image recognition (SMCL and its baselines)."""

__version__ = "0.1.0"

"""Same-run comparison of DMUE scoring against the detectors curators would otherwise use.

``run_benchmark`` (CLI: ``curate bench``) trains every method on the same faces with the same
backbone and budget, scores the real label noise of FERPlus (FER2013 label vs the crowd), and
writes a markdown table, a JSON record and PNG plots. Stages are cached in the output folder, so
an interrupted benchmark resumes where it stopped.
"""

from curate.benchmark.protocol import BenchConfig, run_benchmark

__all__ = ["BenchConfig", "run_benchmark"]

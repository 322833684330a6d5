"""Load tests of the stream-ner pipeline: generator, measurement, scenarios and the benchmark report.

Run a scenario with ``python -m loadtest.scenarios NAME`` from the repository root; see ``README.md``.
"""

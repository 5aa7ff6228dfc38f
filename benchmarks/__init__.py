"""Benchmarks: standalone scripts (``python benchmarks/<name>.py``) and the comparison suite
(``python -m benchmarks``)."""

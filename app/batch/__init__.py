"""Headless batch labelling of whole datasets: ``palidesk batch``, locally or on Ray.

Qt-free on purpose: the same code runs in a terminal, in CI, and inside Ray workers.
"""

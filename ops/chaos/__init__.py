"""The chaos suite: real Sluice processes under webhook load, one fault at a time.

It runs from a checkout (``./dev chaos``, or ``python -m ops.chaos`` in the repository's
root): it reuses the end-to-end tests' process helpers and counting HTTP probe
(``tests/e2e/flow_helpers.py``), as the tests in ``tests/chaos/`` reuse it.
"""

"""A bad-input sweep of the CLI, run by hand (``python -m tests.sweep.bad_inputs --out exp/sweep/``); pytest does
not collect it."""

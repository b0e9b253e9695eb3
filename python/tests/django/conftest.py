"""These tests run under Django's test runner (runtests.py in this folder), not pytest."""

collect_ignore_glob = ["*.py"]

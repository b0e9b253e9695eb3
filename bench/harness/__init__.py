"""Helpers of bench/run.py: processes, repositories, targets, the report and its plots."""

"""Runs handlers: per-function zygotes fork instances; one invocation at a time each."""

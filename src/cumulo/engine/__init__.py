"""The engine: admission (validate, limit, commit), dispatch (claim, run, finish), recovery."""

"""A function that always fails: shows how errors come back (type, message, traceback)."""

from typing import Any


def main_handler(event: Any, context: Any) -> Any:
    print("about to fail on purpose")
    raise ValueError(f"this function always fails (event was {event!r})")

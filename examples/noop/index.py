"""The smallest function: returns ``{}``. Benchmarks measure the platform with it."""

from typing import Any


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    return {}

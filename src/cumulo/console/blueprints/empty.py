"""A new function: replace this with your code."""

from typing import Any


def main_handler(event: Any, context: Any) -> Any:
    # print() goes to the invocation's logs at once.
    print(f"request {context.request_id} got the event {event!r}")
    return {"ok": True}

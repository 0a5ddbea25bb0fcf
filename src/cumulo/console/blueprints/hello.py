"""A sync function: greets whoever the event names.

Event: ``{"name": "ada"}``; answer: ``{"message": "hello, ada"}``.
"""

from typing import Any


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"saying hello to {name}")
    return {"message": f"hello, {name}", "request_id": context.request_id}

"""A sync function: greets whoever the event names."""

from typing import Any


def main_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"saying hello to {name}")
    return {"message": f"hello, {name}", "request_id": context.request_id}

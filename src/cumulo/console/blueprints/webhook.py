"""A job that reports its result to a webhook when it is done.

Event: ``{"url": "https://example.test/hook", "items": [3, 1, 2]}``. The job sorts and sums
the items, then POSTs ``{"request_id": ..., "result": ...}`` as JSON to ``url``. Without a
``url`` it says so in the logs and returns the result with ``"delivered": false``; a webhook
that answers with an error fails the invocation, so the failure is visible (and a normal
async invocation is retried).
"""

import json
import urllib.error
import urllib.request
from typing import Any

WEBHOOK_TIMEOUT_S = 10.0


def do_work(items: list[Any]) -> dict[str, Any]:
    numbers = sorted(float(item) for item in items)
    return {"count": len(numbers), "sum": sum(numbers), "sorted": numbers}


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    result = do_work(event.get("items", [3, 1, 2]))
    print(f"work done: {result['count']} items, sum {result['sum']}")
    url = event.get("url")
    if not url:
        print('no "url" in the event: nothing to notify; pass {"url": "https://..."} to do so')
        return {"result": result, "delivered": False, "reason": "no url in the event"}
    body = json.dumps({"request_id": context.request_id, "result": result}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    print(f"POST {url} ({len(body)} bytes)")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"webhook {url} answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"webhook {url} could not be reached: {exc}") from exc
    print(f"webhook answered {status}")
    return {"result": result, "delivered": True, "webhook_status": status}

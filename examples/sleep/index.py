"""An async-run function that sleeps ``event["seconds"]`` (default 1): for tests and
benchmarks of long runs, terminate and concurrency."""

import time
from typing import Any


def main_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    seconds = float(event.get("seconds", 1)) if isinstance(event, dict) else 1.0
    print(f"sleeping {seconds} s")
    time.sleep(seconds)
    print("awake")
    return {"slept_s": seconds}

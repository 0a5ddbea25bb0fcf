"""An async-run function: a long ETL job that reports its progress every second.

Event: ``{"seconds": N}`` (default 30). Every second it generates a batch of sales rows,
aggregates them and logs how far it got; it returns a summary of everything it processed.
"""

import random
import time
from typing import Any

ROWS_PER_BATCH = 20_000
REGIONS = ("north", "south", "east", "west")


def main_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    seconds = int(event.get("seconds", 30)) if isinstance(event, dict) else 30
    rng = random.Random(context.request_id)
    totals = dict.fromkeys(REGIONS, 0.0)
    rows = 0
    started = time.monotonic()
    print(f"etl: {seconds} s of batches of {ROWS_PER_BATCH} rows")
    for second in range(1, seconds + 1):
        for _ in range(ROWS_PER_BATCH):
            totals[rng.choice(REGIONS)] += rng.uniform(1.0, 500.0)
        rows += ROWS_PER_BATCH
        # Pace the job to one batch per second, so a run lasts what the event asked.
        time.sleep(max(0.0, started + second - time.monotonic()))
        print(f"progress: {second}/{seconds} s, {rows} rows")
    return {
        "rows": rows,
        "seconds": seconds,
        "revenue_by_region": {region: round(total, 2) for region, total in totals.items()},
    }

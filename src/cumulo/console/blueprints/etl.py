"""A long-running ETL job (async execution): extract a batch of rows every second,
transform and aggregate them, and log the progress as it goes.

Event: ``{"seconds": N, "rows_per_batch": R}`` (defaults 60 and 20000): one batch per second
for N seconds. The result is a summary of everything processed. With async execution the
caller gets a request_id at once and can follow the progress lines in the logs while the
job runs.
"""

import random
import time
from typing import Any

REGIONS = ("north", "south", "east", "west")


def extract(rng: random.Random, rows: int) -> list[tuple[str, float]]:
    return [(rng.choice(REGIONS), rng.uniform(1.0, 500.0)) for _ in range(rows)]


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    seconds = int(event.get("seconds", 60))
    rows_per_batch = int(event.get("rows_per_batch", 20_000))
    rng = random.Random(context.request_id)
    totals = dict.fromkeys(REGIONS, 0.0)
    rows = 0
    started = time.monotonic()
    print(f"etl: {seconds} batches of {rows_per_batch} rows, one per second")
    for batch in range(1, seconds + 1):
        for region, amount in extract(rng, rows_per_batch):
            totals[region] += amount
        rows += rows_per_batch
        # Pace the job to one batch per second, standing in for a slow source.
        time.sleep(max(0.0, started + batch - time.monotonic()))
        print(f"progress: batch {batch}/{seconds}, {rows} rows")
    print(f"etl: done in {time.monotonic() - started:.1f} s")
    return {
        "rows": rows,
        "seconds": seconds,
        "revenue_by_region": {region: round(total, 2) for region, total in totals.items()},
    }

"""The ETL job's input: seeded, reproducible sales orders, made with the standard library
only (``random.Random`` gives the same stream for the same seed on every platform and
Python 3 version), so that anyone can recompute the job's results without pandas.

An order is ``order_id, day, region, product_id, quantity``: ``day`` 0-365 of 2024,
``region`` one of ``REGIONS`` or ``None`` (about 1 % of the orders: a broken record),
``quantity`` 1-5. About 0.5 % of the rows repeat the row before them (a re-delivered
record). The product catalogue gives each product a category and a unit price in cents.
"""

import datetime
import random
from collections.abc import Iterator

REGIONS = ("north", "south", "east", "west")
CATEGORIES = ("books", "games", "garden", "kitchen", "music")
PRODUCTS = 40
YEAR_START = datetime.date(2024, 1, 1)
MISSING_REGION_RATE = 0.01
DUPLICATE_RATE = 0.005
COLUMNS = ("order_id", "day", "region", "product_id", "quantity")


def products(seed: int) -> list[dict[str, object]]:
    """The catalogue: ``product_id``, ``category``, ``unit_price_cents`` (1.99 to 99.98)."""
    rng = random.Random(f"products-{seed}")
    return [
        {
            "product_id": product,
            "category": CATEGORIES[product % len(CATEGORIES)],
            "unit_price_cents": rng.randrange(199, 9999),
        }
        for product in range(PRODUCTS)
    ]


def orders(seed: int, rows: int, chunk_rows: int) -> Iterator[dict[str, list[object]]]:
    """``rows`` orders in chunks of at most ``chunk_rows``, each chunk as columns
    (``{name: [values]}``, the names of ``COLUMNS``)."""
    rng = random.Random(f"orders-{seed}")
    previous: tuple[object, ...] | None = None
    next_id = 0
    left = rows
    while left > 0:
        size = min(chunk_rows, left)
        left -= size
        chunk: list[tuple[object, ...]] = []
        for _ in range(size):
            if previous is not None and rng.random() < DUPLICATE_RATE:
                row = previous
            else:
                region = None if rng.random() < MISSING_REGION_RATE else rng.choice(REGIONS)
                row = (
                    next_id,
                    rng.randrange(366),
                    region,
                    rng.randrange(PRODUCTS),
                    rng.randint(1, 5),
                )
                next_id += 1
            chunk.append(row)
            previous = row
        yield {name: [row[i] for row in chunk] for i, name in enumerate(COLUMNS)}


def month_of(day: int) -> int:
    """1-12: the month of ``day`` (0 = 1 January 2024)."""
    return (YEAR_START + datetime.timedelta(days=day)).month

"""An async-run function: an ETL job with pandas, each step logged as it goes.

Event (every key optional): ``{"rows": 200000, "seed": 42, "chunk_rows": 20000}``.

1. extract: the seeded orders of :mod:`sales_data` (stdlib only), a DataFrame per chunk;
2. clean: drop re-delivered rows (a repeated ``order_id``) and rows without a region;
3. enrich: join the product catalogue, ``revenue_cents = quantity * unit_price_cents``, the
   order's month;
4. aggregate: revenue by region, by category and by month, orders by region, the top
   products;
5. load: the region x month revenue table as CSV in ``$TMPDIR``.

Money is in integer cents, so every total is exact and can be checked against a plain
Python computation over the same :mod:`sales_data`. Returns those totals.
"""

import os
import tempfile
import time
from typing import Any

import pandas as pd
import sales_data

MAX_ROWS = 20_000_000


def main_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    rows = int(event.get("rows", 200_000))
    seed = int(event.get("seed", 42))
    chunk_rows = int(event.get("chunk_rows", 20_000))
    if not 0 < rows <= MAX_ROWS or chunk_rows < 1:
        raise ValueError(f"rows must be in 1..{MAX_ROWS} and chunk_rows at least 1")
    started = time.monotonic()
    chunks = (rows + chunk_rows - 1) // chunk_rows
    print(f"etl-pandas {pd.__version__}: {rows} rows (seed {seed}) in {chunks} chunks")

    # 1. extract
    frames = []
    for number, columns in enumerate(sales_data.orders(seed, rows, chunk_rows), 1):
        frames.append(pd.DataFrame(columns))
        done = sum(len(frame) for frame in frames)
        print(f"extract: chunk {number}/{chunks}, {done}/{rows} rows ({_since(started)})")
    orders = pd.concat(frames, ignore_index=True)
    del frames

    # 2. clean
    deduplicated = orders.drop_duplicates(subset="order_id", keep="first")
    duplicates = len(orders) - len(deduplicated)
    clean = deduplicated.dropna(subset=["region"])
    missing_region = len(deduplicated) - len(clean)
    print(
        f"clean: dropped {duplicates} re-delivered rows and {missing_region} without a "
        f"region, {len(clean)} left ({_since(started)})"
    )

    # 3. enrich
    catalogue = pd.DataFrame(sales_data.products(seed))
    sales = clean.merge(catalogue, on="product_id", how="inner", validate="many_to_one")
    sales["revenue_cents"] = sales["quantity"].astype("int64") * sales["unit_price_cents"]
    sales["month"] = (
        pd.Timestamp(sales_data.YEAR_START) + pd.to_timedelta(sales["day"], "D")
    ).dt.month
    print(f"enrich: joined {len(catalogue)} products, {len(sales)} sales ({_since(started)})")

    # 4. aggregate
    by_region = sales.groupby("region")["revenue_cents"].sum()
    by_category = sales.groupby("category")["revenue_cents"].sum()
    by_month = sales.groupby("month")["revenue_cents"].sum().reindex(range(1, 13), fill_value=0)
    orders_by_region = sales.groupby("region").size()
    per_product = (
        sales.groupby("product_id", as_index=False)["revenue_cents"]
        .sum()
        .sort_values(["revenue_cents", "product_id"], ascending=[False, True])
    )
    pivot = sales.pivot_table(
        index="region", columns="month", values="revenue_cents", aggfunc="sum", fill_value=0
    )
    print(
        f"aggregate: {len(by_region)} regions, {len(by_category)} categories, 12 months "
        f"({_since(started)})"
    )

    # 5. load
    path = os.path.join(tempfile.gettempdir(), f"revenue-by-region-month-{seed}.csv")
    pivot.to_csv(path)
    print(f"load: wrote {path} ({os.path.getsize(path)} bytes) ({_since(started)})")

    return {
        "rows": rows,
        "seed": seed,
        "duplicates_dropped": duplicates,
        "missing_region_dropped": missing_region,
        "sales": len(sales),
        "units": int(sales["quantity"].sum()),
        "revenue_cents": int(sales["revenue_cents"].sum()),
        "revenue_cents_by_region": _ints(by_region),
        "revenue_cents_by_category": _ints(by_category),
        "revenue_cents_by_month": [int(v) for v in by_month.tolist()],
        "orders_by_region": _ints(orders_by_region),
        "top_products": [
            {"product_id": int(p), "revenue_cents": int(r)}
            for p, r in per_product.head(3).itertuples(index=False)
        ],
        "pandas": pd.__version__,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def _ints(series: pd.Series) -> dict[str, int]:
    """A Series as JSON: its keys as text, its numpy integers as Python ``int``."""
    return {str(key): int(value) for key, value in series.sort_index().items()}


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"

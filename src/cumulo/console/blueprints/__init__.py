"""Templates of functions offered by the console's Create page: each is a working example,
its handler code in a module of this package (read as text, never imported) and its default
configuration here.

The Create page fills the form from a blueprint; the function is then created like any
other (``Functions.create``), with the code as ``{"files": {"index.py": code}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent

#: Every blueprint's code goes into this file of the new function, called by ``HANDLER``.
HANDLER = "index.main_handler"


@dataclass(frozen=True, slots=True)
class Blueprint:
    """A template of a function. ``module`` names the code's file in this package;
    ``event`` is a sample event (JSON text) for the Test panel."""

    key: str
    title: str
    description: str
    module: str
    name: str
    timeout_s: float
    memory_mb: int
    async_run: bool = False
    event: str = "{}"
    handler: str = HANDLER

    @property
    def code(self) -> str:
        return _code(self.module)


@cache
def _code(module: str) -> str:
    return (HERE / f"{module}.py").read_text(encoding="utf-8")


#: What "Empty function" starts from.
EMPTY = Blueprint(
    key="empty",
    title="Empty function",
    description='A handler that logs its event and returns {"ok": true}; write your own code.',
    module="empty",
    name="",
    timeout_s=3,
    memory_mb=128,
)

BLUEPRINTS: dict[str, Blueprint] = {
    b.key: b
    for b in (
        Blueprint(
            key="hello",
            title="Hello (sync)",
            description='Answers at once: {"name": "ada"} gives {"message": "hello, ada"}.',
            module="hello",
            name="hello",
            timeout_s=10,
            memory_mb=128,
            event='{"name": "ada"}',
        ),
        Blueprint(
            key="etl",
            title="Long-running ETL",
            description="Processes batches of rows for a minute, logging progress after each "
            "one. Async execution: runs for up to hours, never retried.",
            module="etl",
            name="etl-job",
            timeout_s=3600,
            memory_mb=256,
            async_run=True,
            event='{"seconds": 60}',
        ),
        Blueprint(
            key="webhook",
            title="Webhook when done",
            description='Does its work, then POSTs the result as JSON to the "url" in the '
            "event, logging what it did.",
            module="webhook",
            name="notify-webhook",
            timeout_s=60,
            memory_mb=128,
            event='{"items": [3, 1, 2], "url": ""}',
        ),
        Blueprint(
            key="graceful",
            title="Graceful shutdown",
            description="A long job that, on a graceful terminate (SIGTERM), saves a "
            "checkpoint and exits cleanly. Async execution.",
            module="graceful",
            name="checkpointed-job",
            timeout_s=3600,
            memory_mb=128,
            async_run=True,
            event='{"steps": 600}',
        ),
        Blueprint(
            key="cpu",
            title="CPU-heavy transform",
            description="Finds and hashes the primes in a range from the event, printing "
            "progress per segment.",
            module="cpu",
            name="primes",
            timeout_s=120,
            memory_mb=512,
            event='{"start": 0, "end": 100000000, "segments": 20}',
        ),
    )
}


def get(key: str | None) -> Blueprint | None:
    """The blueprint called ``key`` (``"empty"`` for the empty function), or None."""
    if key == EMPTY.key:
        return EMPTY
    return BLUEPRINTS.get(key or "")

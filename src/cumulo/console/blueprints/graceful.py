"""A long job that stops cleanly when asked to (async execution).

A graceful terminate sends SIGTERM before SIGKILL: the handler below logs it, saves a
checkpoint (the step it reached) to ``$TMPDIR`` and exits with status 0, so a next run could
resume from there. Event: ``{"steps": N, "step_s": S}`` (defaults 600, 0.1).
"""

import json
import os
import signal
import sys
import tempfile
import time
from typing import Any


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    steps = int(event.get("steps", 600))
    step_s = float(event.get("step_s", 0.1))
    state = {"request_id": context.request_id, "step": 0}

    def on_sigterm(signum: int, frame: Any) -> None:
        path = os.path.join(tempfile.gettempdir(), f"checkpoint-{context.request_id}.json")
        with open(path, "w") as file:
            json.dump(state, file)
        print(f"SIGTERM received at step {state['step']}; checkpoint saved to {path}")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"working through {steps} steps; terminate gracefully to save a checkpoint")
    for step in range(1, steps + 1):
        time.sleep(step_s)
        state["step"] = step
        if step % 10 == 0:
            print(f"step {step}/{steps}")
    return {"steps": steps}

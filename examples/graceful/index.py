"""An async-run function that stops cleanly on a graceful terminate.

``cumulo terminate ID --grace`` sends SIGTERM before SIGKILL: the handler below logs it,
saves a checkpoint (the step it reached) to ``$TMPDIR`` and exits with status 0.
Event: ``{"steps": N}`` (default 600), one step every 0.1 s.
"""

import json
import os
import signal
import sys
import tempfile
import time
from typing import Any


def main_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    steps = int(event.get("steps", 600)) if isinstance(event, dict) else 600
    state = {"request_id": context.request_id, "step": 0}

    def on_sigterm(signum: int, frame: Any) -> None:
        path = os.path.join(tempfile.gettempdir(), f"checkpoint-{context.request_id}.json")
        with open(path, "w") as file:
            json.dump(state, file)
        print(f"SIGTERM received at step {state['step']}; checkpoint saved to {path}")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"working through {steps} steps; terminate with --grace to checkpoint")
    for step in range(1, steps + 1):
        time.sleep(0.1)
        state["step"] = step
        if step % 10 == 0:
            print(f"step {step}/{steps}")
    return {"steps": steps}

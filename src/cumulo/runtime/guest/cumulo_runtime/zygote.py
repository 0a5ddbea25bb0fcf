"""The zygote: a process per function revision that has imported the handler (and so its
dependencies) and forks instances on request.

Started by the pool as ``python -I -B -m cumulo_runtime.zygote --control-fd N --code-dir D
--handler H [--site-dir S ...]`` on cumulo's clean interpreter, it sets the import path
(:func:`cumulo_runtime.bootstrap.set_import_path`), imports the runtime and the handler's
module once, freezes the heap (``gc.freeze()``, so forked instances share its pages), and
then, single-threaded, waits for fork requests on its ``SOCK_SEQPACKET`` socket (messages in
:mod:`cumulo_runtime.protocol`). It becomes a child subreaper, so processes that instances
leave behind are reaped here and a killed process group disappears at once. It exits when
the pool closes the socket; instances live on in their own sessions until the pool kills
them (or they see their own control socket close).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

from . import bootstrap, protocol

_PR_SET_CHILD_SUBREAPER = 36


class _Zygote:
    def __init__(self, channel: socket.socket, handler: str) -> None:
        self.channel = channel
        self.handler = handler
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector = selectors.DefaultSelector()

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        # A Python-level handler is needed for the wakeup fd to be written on SIGCHLD.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector.register(self.channel, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.channel:
                    message, fds, _, _ = socket.recv_fds(
                        self.channel, protocol.MAX_ZYGOTE_MESSAGE_BYTES, 3
                    )
                    if not message:
                        return  # the pool is gone or done with us
                    self._fork(message, fds)
                else:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 4096):
                            pass
            self._reap()

    def _send(self, message: dict[str, Any]) -> None:
        self.channel.send(json.dumps(message).encode())

    def _fork(self, message: bytes, fds: list[int]) -> None:
        try:
            request = protocol.decode_body(message)
            if len(fds) != 3:
                raise ValueError(f"a fork request needs 3 file descriptors, got {len(fds)}")
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # or the child would write our buffered output again
            pid = os.fork()
        except (OSError, ValueError) as exc:
            for fd in fds:
                os.close(fd)
            self._send({"error": f"{type(exc).__name__}: {exc}"})
            return
        if pid == 0:
            try:
                self._become_instance(request, fds)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self._send({"pid": pid})

    def _become_instance(self, request: dict[str, Any], fds: list[int]) -> NoReturn:
        control_fd, stdout_fd, stderr_fd = fds
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.channel.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.setsid()
        bootstrap.die_with_parent()
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(control_fd, 3)
        os.closerange(4, os.sysconf("SC_OPEN_MAX"))
        os.set_inheritable(3, False)  # the handler's children must not keep it open
        control = socket.socket(fileno=3)
        bootstrap.become_instance(request["instance_dir"], request["env"])
        bootstrap.serve(control, self.handler)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                self._send({"exited": pid, "status": status})


def _become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the zygote process."""
    parser = argparse.ArgumentParser(prog="python -m cumulo_runtime.zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--site-dir", action="append", default=[])
    args = parser.parse_args(argv)
    os.set_inheritable(args.control_fd, False)
    channel = socket.socket(fileno=args.control_fd)
    bootstrap.die_with_parent()
    _become_subreaper()
    bootstrap.set_import_path(args.code_dir, args.site_dir)
    import_error = bootstrap.preload(args.handler)
    zygote = _Zygote(channel, args.handler)
    gc.collect()
    gc.freeze()
    zygote._send({"ready": True, "pid": os.getpid(), "import_error": import_error})
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        zygote.serve()


if __name__ == "__main__":
    main()

"""The wire between the pool and an instance (stdlib only: it is imported inside instances).

Control socket (``SOCK_STREAM``, one per instance): frames of a 4-byte big-endian length
followed by that many bytes of UTF-8 JSON. The pool sends, in order:

1. (only for an instance spawned without a zygote) a setup frame
   ``{"instance_dir": str, "env": {str: str}}``;
2. invocations ``{"request_id", "event" (JSON text), "context": {function_name, namespace,
   function_version, memory_limit_in_mb, time_limit_in_ms, deadline (Unix time, s)}}``.

The instance answers each invocation with ``{"ok": true, "result": <JSON text>}`` or
``{"ok": false, "error": {"type", "message", "traceback"}}``. The pool closing the socket
tells an idle instance to exit.

Before each answer the instance writes :data:`END_MARKER` to both stdout and stderr, so the
pool knows it has read every line of the run (the marker cannot occur in text, and the pool
splits on it even in the middle of an unterminated line).

Zygote socket (``SOCK_SEQPACKET``, one per zygote; one JSON object per message):

- zygote → pool, once: ``{"ready": true, "pid": int, "import_error": str | null}``;
- pool → zygote: ``{"instance_dir": str, "env": {...}}`` with three file descriptors attached
  (control socket, stdout pipe, stderr pipe: the instance's ends); answer ``{"pid": int}``;
- zygote → pool, whenever an instance it forked ends: ``{"exited": pid, "status": int}`` where
  ``status`` is the raw ``waitpid`` status.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

#: Written by an instance to fds 1 and 2 when a run's output is complete.
END_MARKER = b"\x00\x1ecumulo-end\x1e\x00\n"

#: Guards against a corrupt length prefix; larger than any result the API accepts.
MAX_FRAME_BYTES = 256 * 1024 * 1024

#: The zygote's messages are small (an environment is at most a few KB).
MAX_ZYGOTE_MESSAGE_BYTES = 1024 * 1024

_HEADER = struct.Struct(">I")
HEADER_BYTES = _HEADER.size


def encode_frame(message: dict[str, Any]) -> bytes:
    """One control-socket frame holding ``message`` as JSON."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    """The body length announced by a 4-byte header. Raises ``ValueError`` past the cap."""
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"control frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
    return int(length)


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse a frame body (or a zygote message). Raises ``ValueError`` unless a JSON object."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {type(message).__name__}")
    return message


def send_frame(sock: socket.socket, message: dict[str, Any]) -> None:
    """Blocking send of one frame (used inside the instance)."""
    sock.sendall(encode_frame(message))


def recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    """Blocking read of one frame (used inside the instance). ``None`` on a clean EOF."""
    header = _recv_exactly(sock, HEADER_BYTES)
    if header is None:
        return None
    body = _recv_exactly(sock, frame_length(header))
    if body is None:
        raise ConnectionError("control socket closed in the middle of a frame")
    return decode_body(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    missing = size
    while missing:
        chunk = sock.recv(min(missing, 1024 * 1024))
        if not chunk:
            if chunks:
                raise ConnectionError("control socket closed in the middle of a frame")
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


#: Longer lines reach the log in pieces of at most this many bytes.
MAX_LINE_BYTES = 64 * 1024


class LineSplitter:
    """Cuts what an instance writes to one stream into lines, and finds the end markers.

    :meth:`feed` returns, in order, each complete line (decoded as UTF-8 with replacement, the
    ``\\n`` and a trailing ``\\r`` removed) and ``None`` for each :data:`END_MARKER`. Text before
    a marker that has no newline yet is a line of its own. A line longer than
    ``max_line_bytes`` comes out in pieces, cut on character boundaries.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 8:
            raise ValueError("max_line_bytes must be at least 8")
        self._max = max_line_bytes
        self._buffer = b""

    def feed(self, data: bytes) -> list[str | None]:
        out: list[str | None] = []
        buffer = self._buffer + data
        start = 0
        marker = buffer.find(END_MARKER)
        while True:
            newline = buffer.find(b"\n", start)
            # The marker ends in "\n", so a marker always has a newline at or after it.
            if marker != -1 and marker <= newline:
                if marker > start:
                    out.extend(self._pieces(buffer[start:marker]))
                out.append(None)
                start = marker + len(END_MARKER)
                marker = buffer.find(END_MARKER, start)
            elif newline != -1:
                out.extend(self._pieces(buffer[start:newline]))
                start = newline + 1
            else:
                break
        rest = buffer[start:]
        # An unterminated line is held back until it is complete, or long enough to cut; a
        # tail that may be the start of a marker is always held back.
        keep = _marker_prefix_length(rest)
        while len(rest) - keep > self._max:
            cut = self._cut(rest)
            out.append(_decode(rest[:cut]))
            rest = rest[cut:]
        self._buffer = rest
        return out

    def close(self) -> list[str]:
        """End of stream: whatever is left, as lines."""
        rest, self._buffer = self._buffer, b""
        return self._pieces(rest) if rest else []

    def _pieces(self, line: bytes) -> list[str]:
        pieces: list[str] = []
        while len(line) > self._max:
            cut = self._cut(line)
            pieces.append(_decode(line[:cut]))
            line = line[cut:]
        pieces.append(_decode(line))
        return pieces

    def _cut(self, data: bytes) -> int:
        """Where to cut ``data`` (longer than the maximum): not inside a UTF-8 sequence."""
        cut = self._max
        while cut > self._max - 4 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        return cut


def _decode(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\r") else text


def _marker_prefix_length(data: bytes) -> int:
    """Length of the longest suffix of ``data`` that is a proper prefix of the end marker."""
    for size in range(min(len(data), len(END_MARKER) - 1), 0, -1):
        if data.endswith(END_MARKER[:size]):
            return size
    return 0

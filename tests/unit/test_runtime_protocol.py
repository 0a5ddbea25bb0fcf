"""The control-socket frames and the splitting of instance output into lines."""

from __future__ import annotations

import pytest

from cumulo.runtime.guest.cumulo_runtime.protocol import (
    END_MARKER,
    HEADER_BYTES,
    MAX_FRAME_BYTES,
    LineSplitter,
    decode_body,
    encode_frame,
    frame_length,
)


def test_frame_round_trip() -> None:
    frame = encode_frame({"request_id": "r", "event": '{"a": "é"}'})
    assert frame_length(frame[:HEADER_BYTES]) == len(frame) - HEADER_BYTES
    assert decode_body(frame[HEADER_BYTES:]) == {"request_id": "r", "event": '{"a": "é"}'}


def test_frame_limits() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        frame_length((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="JSON object"):
        decode_body(b"[1, 2]")


def test_lines_and_markers() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == ["one"]
    assert splitter.feed(b"o\r\n\nthree") == ["two", ""]
    assert splitter.feed(END_MARKER + b"next\n") == ["three", None, "next"]
    assert splitter.feed(END_MARKER) == [None]
    assert splitter.close() == []


def test_marker_split_across_reads() -> None:
    splitter = LineSplitter()
    out: list[str | None] = []
    data = b"partial" + END_MARKER + b"after\n"
    for i in range(len(data)):  # one byte at a time
        out += splitter.feed(data[i : i + 1])
    assert out == ["partial", None, "after"]


def test_long_lines_are_cut_on_character_boundaries() -> None:
    splitter = LineSplitter(max_line_bytes=10)
    text = "aé" * 12  # 36 bytes
    out = splitter.feed(text.encode() + b"\n")
    assert all(isinstance(piece, str) and len(piece.encode()) <= 10 for piece in out)
    assert "".join(piece or "" for piece in out) == text


def test_unterminated_long_output_is_released_in_pieces() -> None:
    splitter = LineSplitter(max_line_bytes=8)
    assert splitter.feed(b"x" * 20) == ["x" * 8, "x" * 8]
    assert splitter.feed(END_MARKER) == ["xxxx", None]


def test_close_flushes_the_rest() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"no newline \xff") == []
    assert splitter.close() == ["no newline \ufffd"]

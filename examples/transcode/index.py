"""An async-run function: a video transcode with ffmpeg, its progress streamed as it runs.

ffmpeg comes from the ``imageio-ffmpeg`` requirement (a static binary inside the wheel), so
the host needs none. The handler makes a test clip with ffmpeg's ``testsrc`` source,
transcodes it to another size and codec while it logs ffmpeg's ``-progress`` reports, and
probes the result with ffmpeg itself (the package ships no ffprobe). Files go to the
instance's ``$TMPDIR``.

Event (every key optional)::

    {"duration_s": 5, "size": "640x360", "fps": 25,     # the test clip
     "out_size": "320x180", "codec": "h264",           # h264 (.mp4) or vp9 (.webm)
     "realtime": true}                                   # read the input at its frame rate

``realtime`` (ffmpeg's ``-re``) paces the transcode like a live stream, so a run lasts about
``duration_s``; ``false`` goes as fast as the CPU allows. Returns the input's and the
output's probe (codec, width, height, duration_s, frames, size_bytes) and the time taken.
"""

import os
import re
import subprocess
import tempfile
import time
from typing import Any

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
#: codec name -> (encoder, its options, container suffix)
ENCODERS = {
    "h264": ("libx264", ["-preset", "veryfast", "-pix_fmt", "yuv420p"], ".mp4"),
    "vp9": ("libvpx-vp9", ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"], ".webm"),
}
PROGRESS_PERIOD_S = 0.5
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def main_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    duration_s = float(event.get("duration_s", 5))
    width, height = _size(event.get("size", "640x360"))
    fps = int(event.get("fps", 25))
    out_width, out_height = _size(event.get("out_size", "320x180"))
    codec = str(event.get("codec", "h264"))
    realtime = bool(event.get("realtime", True))
    if codec not in ENCODERS:
        raise ValueError(f"codec {codec!r} is not supported; use one of {sorted(ENCODERS)}")
    if not 0 < duration_s <= 3600:
        raise ValueError("duration_s must be in (0, 3600]")
    encoder, options, suffix = ENCODERS[codec]
    workdir = tempfile.mkdtemp(prefix="transcode-")  # in the instance's $TMPDIR
    source = os.path.join(workdir, "source.mp4")
    output = os.path.join(workdir, f"output{suffix}")
    started = time.monotonic()

    print(f"ffmpeg: {_version()} ({FFMPEG})")
    print(f"making a {duration_s:g} s {width}x{height} test clip at {fps} fps")
    _ffmpeg(
        ["-f", "lavfi", "-i", f"testsrc=duration={duration_s:g}:size={width}x{height}:rate={fps}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", source]
    )  # fmt: skip
    probed_source = probe(source)
    print(f"source: {_describe(probed_source)}")

    pacing = ", paced at the input's frame rate" if realtime else ""
    print(f"transcoding to {out_width}x{out_height} {codec} ({encoder}){pacing}")
    args = ["-progress", "pipe:1", "-stats_period", f"{PROGRESS_PERIOD_S:g}"]
    args += ["-re"] if realtime else []
    args += ["-i", source, "-vf", f"scale={out_width}:{out_height}", "-an", "-c:v", encoder]
    _ffmpeg([*args, *options, output], on_progress=_progress_printer(probed_source))
    probed_output = probe(output)
    print(f"output: {_describe(probed_output)}")

    elapsed_s = time.monotonic() - started
    return {
        "input": probed_source,
        "output": probed_output,
        "encoder": encoder,
        "realtime": realtime,
        "elapsed_s": round(elapsed_s, 3),
        "ffmpeg": FFMPEG,
    }


def probe(path: str) -> dict[str, Any]:
    """Codec, frame size, duration, frame count and bytes of the video in ``path``, from
    what ``ffmpeg -i`` prints about it and a decode of it to nothing (the exact frames)."""
    # Exits 1 ("At least one output file must be specified") once it has described the input.
    info = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", path], capture_output=True, text=True
    ).stderr
    duration = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", info)
    video = re.search(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})", info)
    if duration is None or video is None:
        raise RuntimeError(f"ffmpeg could not read {path}: {info.strip()[-500:]}")
    hours, minutes, seconds = duration.groups()
    decoded = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1",
         "-i", path, "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    frames = re.findall(r"^frame=(\d+)", decoded, re.MULTILINE)
    return {
        "codec": video.group(1),
        "width": int(video.group(2)),
        "height": int(video.group(3)),
        "duration_s": round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 3),
        "frames": int(frames[-1]) if frames else 0,
        "size_bytes": os.path.getsize(path),
    }


def _ffmpeg(args: list[str], on_progress: Any = None) -> None:
    """Run ffmpeg; with ``on_progress``, hand it each ``-progress`` report (a dict) as
    ffmpeg writes it on stdout. Errors go to a file, quoted in the exception."""
    command = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats", *args]
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
            assert proc.stdout is not None
            report: dict[str, str] = {}
            for line in proc.stdout:
                key, _, value = line.strip().partition("=")
                report[key] = value.strip()
                if key == "progress":  # the last key of each report
                    if on_progress is not None:
                        on_progress(report)
                    report = {}
        if proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"ffmpeg exited {proc.returncode}: {errors.read().strip()[-1000:]}")


def _progress_printer(source: dict[str, Any]) -> Any:
    total_frames, total_s = source["frames"], source["duration_s"]

    def on_progress(report: dict[str, str]) -> None:
        frame = int(report.get("frame", "0") or 0)
        out_us = report.get("out_time_us", "")
        done_s = int(out_us) / 1e6 if out_us.lstrip("-").isdigit() else 0.0
        percent = 100.0 * frame / total_frames if total_frames else 0.0
        state = "done" if report.get("progress") == "end" else "running"
        print(
            f"progress: frame {frame}/{total_frames} ({percent:.0f}%), "
            f"{max(done_s, 0.0):.2f}/{total_s:g} s, {report.get('fps', '0')} fps, "
            f"speed {report.get('speed', 'N/A').strip()} [{state}]"
        )

    return on_progress


def _size(text: Any) -> tuple[int, int]:
    match = _SIZE.match(str(text))
    if match is None:
        raise ValueError(f"a size is WIDTHxHEIGHT, e.g. 640x360, not {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if width % 2 or height % 2:
        raise ValueError(f"{text}: width and height must be even (yuv420p)")
    return width, height


def _describe(probed: dict[str, Any]) -> str:
    return (
        f"{probed['codec']} {probed['width']}x{probed['height']}, {probed['duration_s']:g} s, "
        f"{probed['frames']} frames, {probed['size_bytes']} bytes"
    )


def _version() -> str:
    first = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout
    return " ".join(first.split()[:3])

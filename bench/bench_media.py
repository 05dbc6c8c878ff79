"""Media preparation: bytes uploaded for a 10-minute 720p video with audio extraction vs the raw file
(target: at least 20x fewer), and extraction speed as a multiple of real time (target: at least 50x), with
the ffmpeg command used. All measured in one run, on files generated here with ffmpeg.

    .venv/bin/python bench/bench_media.py [--minutes 10] [--repeat 3] [--keep DIR]

Two 720p videos, both x264 at a low preset with the same 128 kb/s stereo AAC "speech" track:
- "testsrc as encoded": ffmpeg's test pattern at x264's default quality. The pattern is nearly still, so
  it compresses far better than any film (about 0.2 Mb/s): a worst case for the ratio.
- "testsrc at 2.5 Mb/s": the same pattern held at 2.5 Mb/s, a typical bitrate for 720p streaming and
  web video (films on disk run 2-8 Mb/s): the usual case.
Both are made from a 10-second clip copied end to end, so making them takes seconds, not minutes.

Also: probing and cutting a 140-minute recording at quiet points (plan + split_points), as a multiple of
real time.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from transcribed import media
from transcribed.config import MediaConfig

SPEECH = ("aevalsrc='0.4*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*4*t))*lt(mod(t\\,4)\\,3)|"
          "0.4*sin(2*PI*180*t)*(0.6+0.4*sin(2*PI*5*t))*lt(mod(t\\,4)\\,3)':s=48000:d={seconds}")
MINUTE = "aevalsrc='0.3*sin(2*PI*440*t)*lt(mod(t\\,60)\\,50)':s=8000:d=60"
VIDEOS = {
    "testsrc as encoded": ["-c:v", "libx264", "-preset", "ultrafast"],
    "testsrc at 2.5 Mb/s": ["-c:v", "libx264", "-preset", "veryfast", "-b:v", "2500k", "-minrate", "2500k",
                            "-maxrate", "2500k", "-bufsize", "2500k", "-x264-params", "nal-hrd=cbr"],
}


def ffmpeg(tool: str, *args: str) -> None:
    subprocess.run([tool, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_video(tool: str, folder: Path, name: str, encoder: list[str], seconds: int) -> Path:
    path = folder / f"{name.replace(' ', '-').replace('/', '')}-{seconds}s.mp4"
    if path.exists():
        return path
    clip, sound = folder / "clip.mp4", folder / f"speech-{seconds}s.m4a"
    ffmpeg(tool, "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=25:duration=10", *encoder, f"file:{clip}")
    if not sound.exists():
        ffmpeg(tool, "-f", "lavfi", "-i", SPEECH.format(seconds=seconds), "-c:a", "aac", "-b:a", "128k",
               f"file:{sound}")
    ffmpeg(tool, "-stream_loop", str(seconds // 10), "-i", f"file:{clip}", "-i", f"file:{sound}",
           "-map", "0:v", "-map", "1:a", "-c", "copy", "-t", str(seconds), f"file:{path}")
    return path


def make_recording(tool: str, folder: Path, minutes: int) -> Path:
    path = folder / f"tones-{minutes}min.ogg"
    if not path.exists():
        minute = folder / "minute.ogg"
        ffmpeg(tool, "-f", "lavfi", "-i", MINUTE, "-c:a", "libopus", "-b:a", "6k", f"file:{minute}")
        ffmpeg(tool, "-stream_loop", str(minutes - 1), "-i", f"file:{minute}", "-c", "copy", f"file:{path}")
    return path


def bench_extraction(source: Path, config: MediaConfig, tools: tuple[str, str], repeat: int,
                     folder: Path) -> tuple[float, float, float, list[str], str]:
    """Return (raw bytes, extract bytes, best seconds, command, plan reason)."""
    ffmpeg_path, ffprobe_path = tools
    found = media.probe(source, config, ffprobe_path)
    plan = media.plan(found, config, is_video=True, ffmpeg_available=True)
    assert plan.action == "extract", plan
    best = float("inf")
    size = 0
    with media.Workspace(config, "bench") as workspace:
        for _ in range(repeat):
            started = time.perf_counter()
            extract = media.extract(source, plan, config, ffmpeg_path, workspace.path())
            best = min(best, time.perf_counter() - started)
            size = extract.stat().st_size
            extract.unlink()
        command = media.extract_command(source, plan, config, Path(ffmpeg_path).name, folder / "OUTPUT.ogg")
    return float(source.stat().st_size), float(size), best, command, plan.reason


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="length of the videos (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="extractions per video; the best is kept")
    parser.add_argument("--keep", type=Path, help="make (or reuse) the generated files in this folder")
    args = parser.parse_args()
    config = MediaConfig()
    ffmpeg_path, ffprobe_path = media.find_tools(config)
    if ffmpeg_path is None or ffprobe_path is None:
        print("ffmpeg and ffprobe are needed (apt install ffmpeg)")
        return 2
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-media-"))
    folder.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    version = subprocess.run([ffmpeg_path, "-version"], capture_output=True, text=True, check=True).stdout.split()[2]
    print(f"{os.cpu_count()} CPUs; ffmpeg {version}")
    print(f"extracts: {config.codec} {config.bitrate_kbps} kb/s mono 16 kHz (the defaults)\n")
    try:
        started = time.perf_counter()
        videos = {name: make_video(ffmpeg_path, folder, name, encoder, seconds) for name, encoder in VIDEOS.items()}
        print(f"made the videos in {time.perf_counter() - started:.1f} s\n")
        print(f"{'video (' + str(args.minutes) + ' min, 720p)':<28}{'raw':>10}{'extract':>10}{'fewer bytes':>13}"
              f"{'extraction':>12}{'x real time':>13}")
        command: list[str] = []
        ratios, speeds = [], []
        for name, source in videos.items():
            raw, extract, elapsed, command, reason = bench_extraction(
                source, config, (ffmpeg_path, ffprobe_path), args.repeat, folder)
            ratios.append(raw / extract)
            speeds.append(seconds / elapsed)
            print(f"{name:<28}{raw / 1e6:>8.1f}MB{extract / 1e6:>8.2f}MB{raw / extract:>12.1f}x"
                  f"{elapsed:>11.2f}s{seconds / elapsed:>12.0f}x")
        print(f"\nplan: {reason}")
        print(f"command: {shlex.join(command)}")
        recording = make_recording(ffmpeg_path, folder, 140)
        started = time.perf_counter()
        found = media.probe(recording, config, ffprobe_path)
        plan = media.plan(found, config, is_video=False, ffmpeg_available=True)
        assert found.duration is not None and plan.max_part_seconds is not None
        parts = media.split_points(recording, found.duration, plan.max_part_seconds, config, ffmpeg_path,
                                   stream=plan.stream)
        elapsed = time.perf_counter() - started
        cuts = ", ".join(f"{part.end / 60:.2f} min" for part in parts[:-1])
        print(f"\n140-minute recording: probe + plan + split_points in {elapsed:.2f} s "
              f"({found.duration / elapsed:.0f}x real time): {len(parts)} parts, cut at {cuts}")
        print(f"\nbytes: {min(ratios):.1f}x fewer (worst case), {max(ratios):.1f}x (2.5 Mb/s video); "
              f"target 20x: {'met' if max(ratios) >= 20 else 'NOT met'} for a typical video, "
              f"{'met' if min(ratios) >= 20 else 'not met'} for the still test pattern")
        print(f"speed: {min(speeds):.0f}x real time (slowest); target 50x: {'met' if min(speeds) >= 50 else 'NOT met'}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

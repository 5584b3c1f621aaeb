from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanepipe.errors import InputError
from lanepipe.io.video import clip_name_from_source, decode, encode, probe


def test_probe_real_clip(real_clip: Path) -> None:
    info = probe(str(real_clip))
    assert (info.width, info.height) == (1280, 720)
    assert info.fps == pytest.approx(25.0)
    assert info.fps_source == "stream_rate"
    assert info.num_frames == 38


def test_decode_resamples_to_8fps_by_timestamp(real_clip: Path) -> None:
    clip = decode(str(real_clip), target_fps=8.0, max_frames=150)
    # 38 frames at 25 fps span 0..1.48 s -> targets 0, .125, … 1.5 (1.48 is within half a source frame)
    assert clip.frames.shape == (13, 720, 1280, 3)
    assert clip.fps == 8.0 and clip.source_fps == pytest.approx(25.0)
    assert np.all(np.abs(clip.timestamps - np.arange(13) / 8.0) <= 0.5 / 25 + 1e-9)
    assert np.all(np.diff(clip.source_indices) > 0)


def test_decode_max_frames_and_native_rate(real_clip: Path) -> None:
    clip = decode(str(real_clip), target_fps=None, max_frames=10)
    assert clip.num_frames == 10 and clip.fps == pytest.approx(25.0)
    assert list(clip.source_indices) == list(range(10))


def test_slower_source_is_not_upsampled(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    p = tmp_path / "slow.mp4"
    encode(frames, str(p), fps=4.0)
    clip = decode(str(p), target_fps=8.0)
    assert clip.num_frames == 6 and clip.fps == pytest.approx(4.0)


def test_encode_roundtrip_close(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:96]
    base = np.stack([xx * 2, yy * 3, (xx + yy)], -1).astype(np.uint8)
    frames = np.stack([np.roll(base, i, axis=1) for i in range(5)])
    p = tmp_path / "rt.mp4"
    encode(frames, str(p), fps=8.0)
    back = decode(str(p), target_fps=None)
    assert back.frames.shape == frames.shape
    assert np.abs(back.frames.astype(int) - frames).mean() < 3.0


def test_encode_odd_size(tmp_path: Path) -> None:
    frames = np.full((3, 33, 47, 3), 200, np.uint8)
    p = tmp_path / "odd.mp4"
    encode(frames, str(p), fps=8.0)
    assert decode(str(p), target_fps=None).frames.shape == (3, 33, 47, 3)


@pytest.mark.parametrize(("key", "needle"), [
    ("missing", "no file at that path"),
    ("zero", "zero-byte"),
    ("truncated", "truncated"),
    ("text", "not a video"),
    ("audio_only", "video stream"),
    ("one_frame", "at least 2 decodable frames"),
    ("huge", "pixels"),
    ("empty_dir", "a folder"),
])
def test_bad_input_names_input_expectation_and_finding(bad_inputs: dict[str, Path], key: str,
                                                       needle: str) -> None:
    src = str(bad_inputs[key])
    with pytest.raises(InputError) as ei:
        decode(src)
    msg = str(ei.value)
    assert src in msg and "expected" in msg and "found" in msg
    assert needle in msg


def test_clip_names_are_folder_safe() -> None:
    assert clip_name_from_source("gs://b/x/a b.c.mp4") == "a_b_c"
    assert clip_name_from_source("/tmp/clip-01.MP4") == "clip-01"


@pytest.mark.parametrize(("fmt", "ext", "codec"), [("matroska", "mkv", "libx264"), ("mpegts", "ts", "libx264"),
                                                   ("avi", "avi", "mpeg4")])
def test_fps_from_other_containers(tmp_path: Path, fmt: str, ext: str, codec: str) -> None:
    import fractions

    import av

    p = tmp_path / f"c.{ext}"
    with av.open(str(p), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=fractions.Fraction(12))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    info = probe(str(p))
    assert info.fps == pytest.approx(12.0)
    clip = decode(str(p), target_fps=8.0)
    assert clip.fps == 8.0 and 6 <= clip.num_frames <= 7  # 10 frames over 0.75 s at 12 fps → t = 0 … 0.75

"""Faulty inputs built from real clips: truncated mp4s, raw elementary streams, stills named .mp4, broken
timestamps. Each names what was really found; real clips and normal stream tails still decode fully."""

from __future__ import annotations

import fractions
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from lanepipe.errors import InputError
from lanepipe.io.video import decode, probe


@pytest.fixture(scope="module")
def long_clip(data_dir: Path) -> Path:
    """Real 960x540 clip: 221 frames at 25 fps (moov atom first, so a cut file still opens)."""
    return data_dir / "udacity_lanelines_p1" / "solidWhiteRight.mp4"


def _packets(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as c:
        return [(int(p.pos), int(p.size)) for p in c.demux(video=0) if p.size]


def test_truncated_mp4_is_an_input_error_naming_where_it_broke(long_clip: Path, tmp_path: Path) -> None:
    data = long_clip.read_bytes()
    cut = tmp_path / "cut30.mp4"
    cut.write_bytes(data[: int(len(data) * 0.3)])  # first 30 %: used to decode as a 64-frame clip, status ok
    for target in (8.0, None):
        with pytest.raises(InputError) as ei:
            decode(str(cut), target_fps=target, max_frames=1000)
        msg = str(ei.value)
        assert "decoding broke at frame 64 (t = 2.56 s)" in msg, msg
        assert "of the 221 frames the container announced" in msg
        assert "truncated" in msg


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.97, 0.995])
def test_any_cut_of_a_real_mp4_is_refused(long_clip: Path, tmp_path: Path, frac: float) -> None:
    data = long_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(InputError, match=r"decoding broke at frame \d+ \(t = [\d.]+ s\) of the 221 frames"):
        decode(str(cut), target_fps=None, max_frames=1000)


def test_mp4_cut_at_a_packet_boundary_is_refused(long_clip: Path, tmp_path: Path) -> None:
    pos, size = _packets(long_clip)[60]
    cut = tmp_path / "boundary.mp4"
    cut.write_bytes(long_clip.read_bytes()[: pos + size])  # ends cleanly after 61 whole packets
    with pytest.raises(InputError) as ei:
        decode(str(cut), target_fps=8.0)
    msg = str(ei.value)
    assert "of the 221 frames the container announced" in msg and "61 of its packets present" in msg, msg


def test_truncated_mkv_is_refused_by_its_stated_duration(long_clip: Path, tmp_path: Path) -> None:
    full = tmp_path / "full.mkv"
    with av.open(str(long_clip)) as inp, av.open(str(full), "w", format="matroska") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        for pkt in inp.demux(s):
            if pkt.dts is None:
                continue
            pkt.stream = o
            out.mux(pkt)  # the real clip's packets, unchanged, in Matroska (no frame count; a DURATION tag)
    assert decode(str(full), target_fps=None, max_frames=1000).num_frames == 221
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.3)])
    with pytest.raises(InputError) as ei:
        decode(str(cut))
    assert "decoding broke at frame 65 (t = 2.60 s)" in str(ei.value)
    assert "before the 8.84 s its header states" in str(ei.value)


def test_a_cut_file_is_fine_when_decoding_stops_before_the_cut(long_clip: Path, tmp_path: Path) -> None:
    data = long_clip.read_bytes()
    cut = tmp_path / "cut30.mp4"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    assert decode(str(cut), target_fps=None, max_frames=10).num_frames == 10  # max_frames stops first


def test_every_real_clip_decodes_fully(real_clips: list[Path]) -> None:
    assert len(real_clips) == 4
    for path in real_clips:
        info = probe(str(path))
        clip = decode(str(path), target_fps=None, max_frames=10_000)
        assert clip.num_frames == info.num_frames, path
        assert list(clip.source_indices) == list(range(clip.num_frames))
        assert clip.meta == {}, (path, clip.meta)
        assert np.allclose(np.diff(clip.timestamps), 1 / 25)


def _reencode(src: Path, dst: Path, fmt: str, codec: str, n: int = 38, options: dict[str, str] | None = None,
              size: tuple[int, int] = (320, 180)) -> Path:
    """``n`` frames of a real clip, downscaled and re-encoded at 25 fps into ``fmt``."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=fractions.Fraction(25))
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = options or {}
        for i, fr in enumerate(inp.decode(video=0)):
            if i >= n:
                break
            f = fr.reformat(size[0], size[1], format="yuv420p")
            f.pts = i
            f.time_base = fractions.Fraction(1, 25)
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return dst


@pytest.mark.parametrize(("fmt", "ext"), [("mp4", "mp4"), ("matroska", "mkv")])
def test_b_frame_tail_is_not_an_error(real_clip: Path, tmp_path: Path, fmt: str, ext: str) -> None:
    # x264 'medium' uses 3 B-frames: the last frames only come out of the decoder's flush
    p = _reencode(real_clip, tmp_path / f"bframes.{ext}", fmt, "libx264", options={"preset": "medium", "bf": "3"})
    clip = decode(str(p), target_fps=None, max_frames=1000)
    assert clip.num_frames == 38 and clip.meta == {}
    assert decode(str(p)).num_frames == 13


def test_raw_h264_stream_uses_the_sps_frame_rate(real_clip: Path, tmp_path: Path) -> None:
    p = _reencode(real_clip, tmp_path / "clip.h264", "h264", "libx264")
    info = probe(str(p))
    assert info.fps == pytest.approx(25.0) and info.fps_source == "codec_header"  # PyAV's base_rate says 50
    clip = decode(str(p), target_fps=8.0)
    assert clip.num_frames == 13 and clip.source_fps == pytest.approx(25.0)  # was 7 frames at "50 fps"
    assert np.all(np.abs(clip.timestamps - np.arange(13) / 8.0) <= 0.5 / 25 + 1e-9)
    assert decode(str(p), target_fps=None).num_frames == 38


def test_raw_h264_copied_from_a_real_mp4(real_clip: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copied.h264"
    with av.open(str(real_clip)) as inp, av.open(str(dst), "w", format="h264") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        for pkt in inp.demux(s):
            if pkt.dts is None:
                continue
            pkt.stream = o
            out.mux(pkt)  # the muxer converts to Annex B: the real clip's own bitstream and SPS
    assert probe(str(dst)).fps == pytest.approx(25.0)
    clip = decode(str(dst), target_fps=8.0)
    assert clip.num_frames == 13 and clip.fps == 8.0


@pytest.mark.parametrize(("still", "kind"), [("tusimple_lanenet_examples/image/0000.png", "PNG"),
                                             ("udacity_lanelines_p1/test_images/solidWhiteRight.jpg", "JPEG")])
def test_still_image_named_mp4_says_what_it_is(data_dir: Path, tmp_path: Path, still: str, kind: str) -> None:
    p = tmp_path / "clip.mp4"
    shutil.copy(data_dir / still, p)
    for call in (decode, probe):
        with pytest.raises(InputError) as ei:
            call(str(p))
        assert f"found a {kind} image, not a video" in str(ei.value)  # was "found 1"


def _zero_timestamps(src: Path, dst: Path, fmt: str) -> Path:
    """Copy ``src``'s video packets unchanged with every pts/dts set to 0."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        for pkt in inp.demux(s):
            if pkt.dts is None:
                continue
            pkt.pts = pkt.dts = 0
            pkt.stream = o
            out.mux(pkt)
    return dst


def test_all_zero_timestamps_fall_back_to_the_header_rate(real_clip: Path, tmp_path: Path) -> None:
    p = _zero_timestamps(real_clip, tmp_path / "zero.mp4", "mp4")
    with av.open(str(p)) as c:
        assert {f.time for f in c.decode(video=0)} == {0.0}  # the crafted file really has 38 frames at t = 0
    info = probe(str(p))
    assert info.fps == pytest.approx(25.0) and info.fps_source == "codec_header"  # average_rate says 950
    clip = decode(str(p), target_fps=8.0)  # was: "expected at least 2 decodable frames, found 1"
    assert clip.num_frames == 13 and clip.fps == 8.0 and clip.source_fps == pytest.approx(25.0)
    assert np.allclose(clip.timestamps, np.arange(13) / 8.0, atol=0.5 / 25)
    assert "do not advance" in clip.meta["timing"] and "25 fps (the codec header's rate)" in clip.meta["timing"]
    native = decode(str(p), target_fps=None, max_frames=1000)
    assert native.num_frames == 38 and list(native.source_indices) == list(range(38))


def test_all_zero_timestamps_without_any_rate_are_refused_with_the_count(tmp_path: Path) -> None:
    p = tmp_path / "mjpeg_zero.mp4"
    with av.open(str(p), "w", format="mp4") as out:  # MJPEG has no rate in its header; mp4 pts all 0
        s = out.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        pkts = []
        for i in range(10):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            f.pts = i
            pkts += list(s.encode(f))
        pkts += list(s.encode())
        for pkt in pkts:
            pkt.pts = pkt.dts = 0
            out.mux(pkt)
    with pytest.raises(InputError) as ei:
        decode(str(p))
    msg = str(ei.value)
    assert "10 frames whose timestamps are all 0 s" in msg and "cannot resample by time" in msg, msg

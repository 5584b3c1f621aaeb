"""Shared fixtures. Real data comes from LANEPIPE_DATA_DIR; tests that need it fail (never skip) without it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
#: A stream that stalls fails its test after 5 minutes rather than Ray Data's default 30 (CPU tests here move blocks
#: within seconds); read when ray.data is imported, and passed on to the subprocesses tests start.
os.environ.setdefault("RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S", "300")


def _data_dir() -> Path:
    raw = os.environ.get("LANEPIPE_DATA_DIR")
    if not raw:
        pytest.fail("LANEPIPE_DATA_DIR is not set: point it at the shared data folder (e.g. ../shared/data)")
    p = Path(raw).resolve()
    if not (p / "README.md").is_file():
        pytest.fail(f"LANEPIPE_DATA_DIR={raw}: expected the shared data folder with README.md, found none")
    return p


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data folder (dashcam clips, stills, TuSimple frames, comma2k19 poses)."""
    return _data_dir()


@pytest.fixture(scope="session")
def real_clip(data_dir: Path) -> Path:
    """Shortest real 1280x720 clip: 38 frames at 25 fps, highway."""
    return data_dir / "udacity_advanced_lane_lines" / "vehicle_detection_test_video.mp4"


@pytest.fixture(scope="session")
def real_clips(data_dir: Path) -> list[Path]:
    """All four real dashcam clips."""
    return sorted(data_dir.glob("udacity_*/*.mp4"))


def make_video(path: Path, frames, fps: float = 8.0) -> Path:
    """Encode ``(T, H, W, 3) uint8`` frames with the project's encoder (real PyAV file)."""
    from lanepipe.io.video import encode

    encode(frames, str(path), fps)
    return path


def _audio_only(path: Path) -> Path:
    import av
    import numpy as np

    with av.open(str(path), mode="w") as out:
        s = out.add_stream("aac", rate=16000)
        s.layout = "mono"
        for i in range(4):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            fr.sample_rate = 16000
            fr.pts = i * 1024
            for pkt in s.encode(fr):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory, real_clip: Path) -> dict[str, Path]:
    """Malformed inputs, each a real file on disk (except 'missing')."""
    import numpy as np

    d = tmp_path_factory.mktemp("bad")
    zero = d / "zero.mp4"
    zero.write_bytes(b"")
    trunc = d / "truncated.mp4"
    data = real_clip.read_bytes()
    trunc.write_bytes(data[: len(data) // 3])
    text = d / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    one = make_video(d / "one_frame.mp4", np.full((1, 64, 96, 3), 120, np.uint8))
    huge = make_video(d / "huge.mp4", np.zeros((2, 2304, 4096, 3), np.uint8))
    empty_dir = d / "empty_dir"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("no videos here")
    return {"missing": d / "missing.mp4", "zero": zero, "truncated": trunc, "text": text,
            "audio_only": _audio_only(d / "audio_only.mp4"), "one_frame": one, "huge": huge,
            "empty_dir": empty_dir}


def _road_clip(path: Path, shade: int, frames: int = 8, fps: float = 8.0) -> Path:
    """A 160x96 road picture, ``frames`` frames at ``fps`` (real PyAV file): blue sky, green verge, a grey
    carriageway trapezoid of value ``shade`` (different shades make clips differ)."""
    import numpy as np

    h, w = 96, 160
    video = np.zeros((frames, h, w, 3), np.uint8)
    video[:, : h // 2] = (120, 160, 220)
    video[:, h // 2 :] = (70, 110, 60)
    for y in range(h // 2, h):
        half = int((y - h // 2) / (h / 2) * w * 0.6)
        video[:, y, max(0, w // 2 - half) : w // 2 + half] = (shade, shade, shade + 2)
    return make_video(path, video, fps=fps)


@pytest.fixture(scope="session")
def make_road_clip() -> Callable[[Path, int], Path]:
    """Factory: ``make_road_clip(path, shade)`` writes an 8-frame 8 fps 160x96 road clip (see :func:`_road_clip`)
    and returns its path."""
    return _road_clip


@pytest.fixture
def synthetic_clip_file(tmp_path: Path) -> Path:
    """A small 16-frame 25 fps clip: grey road trapezoid under a blue sky."""
    return _road_clip(tmp_path / "synthetic.mp4", 90, frames=16, fps=25.0)


def _cogvideox_inputs(transformer: Any) -> dict[str, Any]:
    """Seeded inputs of one forward call of a CogVideoX transformer at its sample size: a batch of 2 latent
    videos, text embeddings of the full text length, timestep 500."""
    import torch

    g = torch.Generator().manual_seed(2)
    c = transformer.config
    frames = (c.sample_frames - 1) // c.temporal_compression_ratio + 1
    return {
        "hidden_states": torch.randn(2, frames, c.in_channels, c.sample_height, c.sample_width, generator=g),
        "encoder_hidden_states": torch.randn(2, c.max_text_seq_length, c.text_embed_dim, generator=g),
        "timestep": torch.tensor([500, 500]), "return_dict": False,
    }


@pytest.fixture(scope="session")
def cogvideox_inputs() -> Callable[[Any], dict[str, Any]]:
    """Factory: ``cogvideox_inputs(transformer)`` gives the seeded keyword arguments of one forward call of a
    (tiny-random) CogVideoX transformer (see :func:`_cogvideox_inputs`)."""
    return _cogvideox_inputs


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the session: 2 CPUs and a logical GPU for GPU-stage wiring."""
    import ray

    # keep Ray's node IP and listeners on loopback (otherwise it binds the machine's address)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
    yield ray
    ray.shutdown()

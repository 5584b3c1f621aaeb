from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from lanepipe.datasets.physical_ai_av import EditedVideo, PaiavClip, open_clip
from lanepipe.errors import BackendUnavailableError, InputError
from lanepipe.predict.alpamayo import (
    ALPAMAYO_CAMERAS,
    AlpamayoConfig,
    AlpamayoPredictor,
    AlpamayoWorkerError,
    build_model_inputs,
)
from lanepipe.predict.base import Predictor
from lanepipe.testing.paiav import FIXTURE_CLIP_ID, fixture_frame_index, write_fixture
from lanepipe.types import EgoState, PredictorInput

FRONT = "camera_front_wide_120fov"
T0 = 2_000_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> PaiavClip:
    root = tmp_path_factory.mktemp("paiav")
    write_fixture(root, egomotion_seconds=9.0)
    return open_clip(root, FIXTURE_CLIP_ID)


@pytest.fixture(scope="module")
def inp(clip: PaiavClip) -> PredictorInput:
    return clip.predictor_input(T0)


@pytest.fixture(scope="module")
def dry() -> Iterator[AlpamayoPredictor]:
    cfg = AlpamayoConfig(dry_run=True, num_samples=3, worker_args=(
        "--fault", "raises=raise", "--fault", "crashes=exit", "--fault", "chatty=print"))
    with AlpamayoPredictor(cfg) as p:
        yield p


# ---------------------------------------------------------------------------------------------- inputs
def test_build_model_inputs_like_upstream(clip: PaiavClip, inp: PredictorInput) -> None:
    cfg = AlpamayoConfig(dry_run=True)
    arr = build_model_inputs(inp, cfg)
    assert arr["image_frames"].shape == (4, 4, 3, 108, 192) and arr["image_frames"].dtype == np.uint8
    # upstream sorts cameras by index: cross_left 0, front_wide 1, cross_right 2, front_tele 6
    assert arr["camera_indices"].tolist() == [0, 1, 2, 6]
    order = ["camera_cross_left_120fov", FRONT, "camera_cross_right_120fov", "camera_front_tele_30fov"]
    for c, cam in enumerate(order):
        ts = clip.frame_timestamps(cam)
        want = np.searchsorted(ts, T0 + np.array([-300_000, -200_000, -100_000, 0]), side="right") - 1
        got = [fixture_frame_index(arr["image_frames"][c, f].transpose(1, 2, 0)) for f in range(4)]
        assert got == want.tolist(), cam
        assert arr["absolute_timestamps"][c].tolist() == ts[want].tolist()
    rel = arr["relative_timestamps"]
    assert rel.dtype == np.float32 and rel.min() == 0.0
    assert np.allclose(np.diff(rel, axis=1), 0.1, atol=1e-6)
    assert arr["ego_history_xyz"].shape == (1, 1, 16, 3) and arr["ego_history_rot"].shape == (1, 1, 16, 3, 3)
    assert np.allclose(arr["ego_history_xyz"][0, 0, -1], 0) and np.allclose(arr["ego_history_rot"][0, 0, -1], np.eye(3))
    assert np.allclose(arr["ego_history_xyz"][0, 0], clip.ego_state(T0).xyz)
    assert not arr["resized"].any() and int(arr["t0_us"]) == T0


def test_edited_camera_is_replaced_and_resized(clip: PaiavClip) -> None:
    ts0 = int(clip.frame_timestamps(FRONT)[0])
    n = 17
    frames = np.zeros((n, 64, 96, 3), np.uint8)
    frames[..., 0] = np.arange(n, dtype=np.uint8)[:, None, None] * 10 + 50  # red level encodes the frame
    frames[:, 20:40, 30:60] = (0, 255, 255)
    ed = EditedVideo.from_frames(FIXTURE_CLIP_ID, FRONT, frames, ts0)
    inp = clip.predictor_input(ed.t0_us, replace={FRONT: ed})
    arr = build_model_inputs(inp, AlpamayoConfig(dry_run=True))
    assert arr["resized"].tolist() == [False, True, False, False]
    front = arr["image_frames"][1]  # (F, 3, H, W) at the native 192x108
    assert front.shape == (4, 3, 108, 192)
    # 8 fps frames picked at t0 - 0.3 / -0.2 / -0.1 / 0: edited frames 13, 14, 15, 16
    assert [round((int(front[f, 0, 2, 2]) - 50) / 10) for f in range(4)] == [13, 14, 15, 16]
    want = cv2.resize(frames[16], (192, 108), interpolation=cv2.INTER_CUBIC)
    assert np.abs(front[3].transpose(1, 2, 0).astype(int) - want).max() <= 1
    assert arr["absolute_timestamps"][1].tolist() == (ed.timestamps_us[[13, 14, 15, 16]]).tolist()
    original = clip.predictor_input(ed.t0_us)
    assert not np.array_equal(build_model_inputs(original, AlpamayoConfig(dry_run=True))["image_frames"][1], front)


def test_front_alias_and_bad_inputs(inp: PredictorInput) -> None:
    cfg = AlpamayoConfig(dry_run=True)
    cams = dict(inp.cameras)
    cams["front"] = cams.pop(FRONT)
    aliased = dataclasses.replace(inp, cameras=cams, front="front")
    assert build_model_inputs(aliased, cfg)["image_frames"].shape[0] == 4

    missing = dataclasses.replace(inp, cameras={k: v for k, v in inp.cameras.items() if k != "camera_front_tele_30fov"})
    with pytest.raises(InputError, match=rf"clip {FIXTURE_CLIP_ID}.*no camera_front_tele_30fov"):
        build_model_inputs(missing, cfg)

    v = inp.cameras[FRONT]
    late = dataclasses.replace(v, frames=v.frames[1:], timestamps=v.timestamps[1:])
    with pytest.raises(InputError, match=r"camera camera_front_wide_120fov: expected a frame at or before t0 - 0\.300"):
        build_model_inputs(dataclasses.replace(inp, cameras={**inp.cameras, FRONT: late}), cfg)
    stale = dataclasses.replace(v, timestamps=v.timestamps - 0.5)
    with pytest.raises(InputError, match="frames end before t0"):
        build_model_inputs(dataclasses.replace(inp, cameras={**inp.cameras, FRONT: stale}), cfg)

    shifted = EgoState(inp.ego.xyz + np.float32(1.0), inp.ego.rot, inp.ego.speed)
    with pytest.raises(InputError, match="ego history"):
        build_model_inputs(dataclasses.replace(inp, ego=shifted), cfg)


def test_config_validates() -> None:
    assert AlpamayoConfig().cameras == ALPAMAYO_CAMERAS
    assert (AlpamayoConfig().top_p, AlpamayoConfig().temperature, AlpamayoConfig().max_generation_length) == (
        0.98, 0.6, 256)
    with pytest.raises(ValidationError, match="unknown camera"):
        AlpamayoConfig(cameras=("camera_front_wide_120fov", "camera_side"))
    with pytest.raises(ValidationError):
        AlpamayoConfig(top_p=1.5)
    with pytest.raises(ValidationError):
        AlpamayoConfig(colour="red")  # type: ignore[call-arg]


# ---------------------------------------------------------------------------------------------- availability
def test_backend_unavailable_messages(tmp_path: Path, inp: PredictorInput) -> None:
    with pytest.raises(BackendUnavailableError, match=r"set predict\.alpamayo\.python"):
        AlpamayoPredictor(AlpamayoConfig())
    with pytest.raises(BackendUnavailableError, match="not an executable file"):
        AlpamayoPredictor(AlpamayoConfig(python=str(tmp_path / "no" / "python")))
    with pytest.raises(BackendUnavailableError, match="no Alpamayo-R1 checkpoint at"):
        AlpamayoPredictor(AlpamayoConfig(python=sys.executable, model=str(tmp_path / "missing-ckpt")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendUnavailableError, match=r"no config\.json"):
        AlpamayoPredictor(AlpamayoConfig(python=sys.executable, model=str(tmp_path / "empty")))
    # a real interpreter without alpamayo_r1: the worker starts, fails to load, and says what to install
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    with AlpamayoPredictor(AlpamayoConfig(python=sys.executable, model=str(ckpt), device="cpu")) as p:
        with pytest.raises(BackendUnavailableError, match=r"could not load .*install alpamayo_r1"):
            p.predict(inp)
        assert p.pid is None


# ---------------------------------------------------------------------------------------------- worker protocol
def test_dry_run_worker_answers(dry: AlpamayoPredictor, inp: PredictorInput) -> None:
    assert isinstance(dry, Predictor)
    pred = dry.predict(inp)
    pid = dry.pid
    assert pid is not None and pid != os.getpid()
    assert pred.trajectories.shape == (3, 64, 3) and pred.trajectories.dtype == np.float32
    # straight ahead at the history's speed (10 m/s): 1 m per 0.1 s step
    assert np.allclose(pred.trajectories[:, :, 0], np.arange(1, 65) * 1.0, atol=1e-3)
    assert np.allclose(pred.trajectories[:, :, 1:], 0)
    assert pred.reasoning is not None and len(pred.reasoning) == 3 and "10.00 m/s" in pred.reasoning[0]
    assert pred.meta["camera_indices"] == [0, 1, 2, 6] and pred.meta["dry_run"]
    assert dry.info["event"] == "ready" and dry.info["python"].startswith("3.")
    dry.predict(inp)
    assert dry.pid == pid  # one long-lived worker
    assert not list(dry._tmp.glob("*.npz"))  # request files cleaned up


def test_worker_exception_names_clip(dry: AlpamayoPredictor, inp: PredictorInput) -> None:
    dry.predict(inp)
    pid = dry.pid
    with pytest.raises(AlpamayoWorkerError, match="failed on clip raises: RuntimeError: injected failure"):
        dry.predict(dataclasses.replace(inp, clip="raises"))
    assert dry.pid == pid  # an exception in the model call does not kill the worker
    assert dry.predict(dataclasses.replace(inp, clip="chatty")).trajectories.shape == (3, 64, 3)


def test_worker_crash_restarts(dry: AlpamayoPredictor, inp: PredictorInput) -> None:
    dry.predict(inp)
    starts = dry.starts
    with pytest.raises(AlpamayoWorkerError, match=r"crashed on clip crashes 2 time\(s\).*exit code 17"):
        dry.predict(dataclasses.replace(inp, clip="crashes"))
    assert dry.starts == starts + 1 and dry.pid is None  # the running worker died, one restart died too
    assert dry.predict(inp).trajectories.shape == (3, 64, 3)  # a fresh worker serves the next clip
    # killed from outside between requests: restarted transparently
    pid = dry.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while dry._proc is not None and dry._proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dry.predict(inp).trajectories.shape == (3, 64, 3)
    assert dry.pid not in (None, pid)


def test_worker_timeout_and_close(inp: PredictorInput) -> None:
    cfg = AlpamayoConfig(dry_run=True, request_timeout_s=1.0, worker_args=("--fault", "slow=hang"))
    p = AlpamayoPredictor(cfg)
    p.start()
    with pytest.raises(AlpamayoWorkerError, match="on clip slow: no answer within 1 s"):
        p.predict(dataclasses.replace(inp, clip="slow"))
    assert p.pid is None
    assert p.predict(inp).trajectories.shape == (1, 64, 3)
    proc = p._proc
    tmp = p._tmp
    p.close()
    assert proc is not None and proc.poll() == 0  # asked to shut down, exited cleanly
    assert not tmp.exists()
    p.close()


# ---------------------------------------------------------------------------------------------- real weights
@pytest.mark.weights
@pytest.mark.skipif(not os.environ.get("LANEPIPE_WEIGHTS_DIR"), reason="needs LANEPIPE_WEIGHTS_DIR with Alpamayo-R1")
def test_real_model_on_fixture(inp: PredictorInput) -> None:
    weights = Path(os.environ["LANEPIPE_WEIGHTS_DIR"])
    cfg = AlpamayoConfig(
        model=os.environ.get("LANEPIPE_ALPAMAYO_MODEL", str(weights / "Alpamayo-R1-10B")),
        processor=os.environ.get("LANEPIPE_ALPAMAYO_PROCESSOR", ""),
        python=os.environ.get("LANEPIPE_ALPAMAYO_PYTHON"), device=os.environ.get("LANEPIPE_DEVICE", "cuda"))
    with AlpamayoPredictor(cfg) as p:
        pred = p.predict(inp)
    assert pred.trajectories.shape == (1, 64, 3)
    assert pred.reasoning and pred.reasoning[0].strip()


# ---------------------------------------------------------------------------------------------- model-call path
_STUB_HELPER = '''
import torch
MIN_PIXELS, MAX_PIXELS = 163840, 196608
CALLS = {}

def create_message(frames):
    assert frames.ndim == 4, frames.shape  # (N_cam * F, 3, H, W), as upstream checks
    CALLS["frames"] = tuple(frames.shape)
    return [{"role": "user", "content": [{"type": "image", "image": f} for f in frames]}]

class _Processor:
    def apply_chat_template(self, messages, **kw):
        assert kw == {"tokenize": True, "add_generation_prompt": False, "continue_final_message": True,
                      "return_dict": True, "return_tensors": "pt"}, kw
        n = len(messages[0]["content"])
        return {"input_ids": torch.arange(n)[None], "pixel_values": torch.zeros(n, 4)}

def get_processor(tokenizer):
    assert tokenizer == "stub-tokenizer"
    return _Processor()

def to_device(data, device=None, dtype=None):
    if isinstance(data, torch.Tensor):
        return data.to(device)
    if isinstance(data, dict):
        return {k: to_device(v, device) for k, v in data.items()}
    return data
'''

_STUB_MODEL = '''
import numpy as np
import torch
from alpamayo_r1 import helper

class AlpamayoR1:
    tokenizer = "stub-tokenizer"

    @classmethod
    def from_pretrained(cls, path, dtype=None):
        assert dtype is torch.float32, dtype
        return cls()

    def to(self, device):
        return self

    def eval(self):
        return self

    def sample_trajectories_from_data_with_vlm_rollout(self, data, top_p, temperature, num_traj_samples,
                                                       max_generation_length, return_extra):
        assert data["tokenized_data"]["input_ids"].shape == (1, helper.CALLS["frames"][0])
        xyz, rot = data["ego_history_xyz"], data["ego_history_rot"]
        assert xyz.shape == (1, 1, 16, 3) and rot.shape == (1, 1, 16, 3, 3) and xyz.dtype == torch.float32
        assert (top_p, temperature, max_generation_length) == (0.9, 0.5, 32)
        k = num_traj_samples
        out = torch.zeros(1, 1, k, 64, 3)
        out[..., 1] = torch.arange(k, dtype=torch.float32)[:, None]  # sample i drives at y = i
        cot = np.array([[[f"frames {helper.CALLS['frames']} sample {i}" for i in range(k)]]])
        return out, torch.eye(3).expand(1, 1, k, 64, 3, 3), {"cot": cot}
'''


def test_worker_model_call_against_upstream_api_stub(tmp_path: Path, inp: PredictorInput) -> None:
    # A stand-in alpamayo_r1 package with upstream's call signatures: exercises the worker's real (non-dry-run)
    # loading and model-call code, torch included, without weights.
    pkg = tmp_path / "stub" / "alpamayo_r1"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text(_STUB_HELPER)
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "models" / "alpamayo_r1.py").write_text(_STUB_MODEL)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    cfg = AlpamayoConfig(python=sys.executable, model=str(ckpt), device="cpu", dtype="float32", num_samples=2,
                         top_p=0.9, temperature=0.5, max_generation_length=32,
                         env={"PYTHONPATH": str(tmp_path / "stub")})
    with AlpamayoPredictor(cfg) as p:
        pred = p.predict(inp)
    assert pred.trajectories.shape == (2, 64, 3)
    assert np.allclose(pred.trajectories[:, 0, 1], [0.0, 1.0])
    assert pred.reasoning == ["frames (16, 3, 108, 192) sample 0", "frames (16, 3, 108, 192) sample 1"]

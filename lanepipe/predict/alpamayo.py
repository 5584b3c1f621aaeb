"""Alpamayo-R1 (NVlabs/alpamayo) as a lanepipe predictor, run in its own Python environment.

Alpamayo needs Python 3.12, transformers 4.57 and its own pins, which cannot share a process (or a Ray
cluster) with lanepipe's Python 3.11. :class:`AlpamayoPredictor` therefore owns one long-lived worker process
(:mod:`lanepipe.predict.alpamayo_worker`, started with ``AlpamayoConfig.python``) that loads the model once and
answers requests: arrays travel as ``.npz`` files in a private temp folder, requests and replies as JSON lines
over the worker's stdin/stdout. A worker that dies is restarted (``max_restarts`` per request).

:func:`build_model_inputs` does everything upstream does before the model call (NVlabs/alpamayo
``src/alpamayo_r1/load_physical_aiavdataset.py``): 4 cameras (cross-left, front-wide, cross-right, front-tele)
sorted by Alpamayo's camera index, 4 frames each at ``t0 - 0.3 … t0`` (the last frame at or before each time),
frames as ``(N_cam, F, 3, H, W) uint8``, the 16-step ego history in the t0 ego frame as
``(1, 1, 16, 3)`` / ``(1, 1, 16, 3, 3) float32``, and per-frame timestamps (absolute µs; relative seconds from the
earliest frame). A camera whose frames are not at the native size of its camera model (an edited, replaced
camera) is resized to it. Every camera the edit stage painted (``edit.cameras``) arrives edited in the input;
the prediction's meta records them (``edited_cameras``) and what the worker received per camera
(``worker_received``: SHA-1 of each camera's frames). The worker then builds the chat message and calls
``sample_trajectories_from_data_with_vlm_rollout`` as upstream ``test_inference.py`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lanepipe.errors import BackendUnavailableError, InputError, LanepipeError
from lanepipe.monitoring import model_load
from lanepipe.types import FUTURE_STEPS, HISTORY_STEPS, CameraView, Prediction, PredictorInput

#: Alpamayo's camera index by PAI-AV camera name (``load_physical_aiavdataset.py``); inputs are sorted by it.
CAMERA_INDEX: dict[str, int] = {
    "camera_cross_left_120fov": 0,
    "camera_front_wide_120fov": 1,
    "camera_cross_right_120fov": 2,
    "camera_rear_left_70fov": 3,
    "camera_rear_tele_30fov": 4,
    "camera_rear_right_70fov": 5,
    "camera_front_tele_30fov": 6,
}
#: The four cameras upstream loads by default.
ALPAMAYO_CAMERAS: tuple[str, ...] = (
    "camera_cross_left_120fov", "camera_front_wide_120fov", "camera_cross_right_120fov", "camera_front_tele_30fov",
)
FRONT_CAMERA = "camera_front_wide_120fov"
WORKER_SCRIPT = Path(__file__).with_name("alpamayo_worker.py")
US = 1_000_000
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class AlpamayoWorkerError(LanepipeError):
    """The Alpamayo worker failed on a clip (an exception in the model call, a crash or a timeout)."""


class AlpamayoConfig(BaseModel):
    """Alpamayo-R1 predictor settings. Defaults follow upstream ``test_inference.py``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("nvidia/Alpamayo-R1-10B", description="hub id (from the worker env's HF cache) or local "
                       "checkpoint folder for AlpamayoR1.from_pretrained")
    processor: str = Field("", description="local Qwen3-VL-2B-Instruct processor folder; empty = upstream "
                           "helper.get_processor (hub id Qwen/Qwen3-VL-2B-Instruct)")
    python: str | None = Field(None, description="interpreter of Alpamayo's own environment (Python 3.12 with "
                               "alpamayo_r1, torch and its transformers pin); required unless dry_run")
    device: str = "cuda"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    top_p: float = Field(0.98, gt=0, le=1)
    temperature: float = Field(0.6, gt=0)
    max_generation_length: int = Field(256, ge=1, description="max tokens of the chain-of-causation rollout")
    num_samples: int = Field(1, ge=1, le=64, description="trajectory samples K per clip")
    seed: int = 42
    cameras: tuple[str, ...] = ALPAMAYO_CAMERAS
    frames_per_camera: int = Field(4, ge=1)
    frame_step_s: float = Field(0.1, gt=0, description="frames at t0 - (F-1)·step … t0")
    max_frame_age_s: float = Field(0.15, gt=0, description="a picked frame may be at most this much older than "
                                   "the time it stands for")
    startup_timeout_s: float = Field(1800.0, gt=0, description="model loading")
    request_timeout_s: float = Field(600.0, gt=0)
    max_restarts: int = Field(1, ge=0, description="worker restarts per request after a crash")
    dry_run: bool = Field(False, description="worker answers with a straight trajectory, loads no model")
    worker_args: tuple[str, ...] = Field((), description="extra command-line arguments for the worker")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables for the worker")

    @field_validator("cameras")
    @classmethod
    def _known_cameras(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in v if c not in CAMERA_INDEX]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; Alpamayo knows {sorted(CAMERA_INDEX)}")
        if not v or len(set(v)) != len(v):
            raise ValueError(f"expected one or more distinct cameras, found {list(v)}")
        return v


# ---------------------------------------------------------------------------------------------- inputs
def _view_for(inp: PredictorInput, name: str) -> CameraView:
    if name in inp.cameras:
        return inp.cameras[name]
    if name == FRONT_CAMERA and inp.front in inp.cameras:
        return inp.cameras[inp.front]
    raise InputError(f"clip {inp.clip}", f"camera views {list(ALPAMAYO_CAMERAS)} (or the one set in "
                     "predict.alpamayo.cameras)", f"no {name} among {sorted(inp.cameras)}",
                     "Alpamayo-R1 needs the four PhysicalAI-AV cameras; open the clip with "
                     "lanepipe.datasets.physical_ai_av")


def _native_size(view: CameraView) -> tuple[int, int] | None:
    w, h = getattr(view.camera, "width", None), getattr(view.camera, "height", None)
    return (int(w), int(h)) if isinstance(w, int | np.integer) and isinstance(h, int | np.integer) else None


def _resize(frames: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    w, h = size
    up = w * h > frames.shape[1] * frames.shape[2]
    interp = cv2.INTER_CUBIC if up else cv2.INTER_AREA
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames]).astype(np.uint8)


def build_model_inputs(inp: PredictorInput, cfg: AlpamayoConfig) -> dict[str, npt.NDArray[Any]]:
    """Arrays for one Alpamayo-R1 call, as upstream prepares them before tokenisation.

    Args:
        inp: the clip at t0; ``inp.cameras`` keyed by PAI-AV camera name (``inp.front`` may stand for the front-wide
            camera), each view's ``timestamps`` in seconds relative to t0; ``inp.meta["t0_us"]`` (if present) is t0
            on the clip's µs timeline.
        cfg: cameras, frames per camera and frame step.

    Returns:
        ``image_frames (N_cam, F, 3, H, W) uint8`` RGB at each camera's native size, cameras sorted by
        ``CAMERA_INDEX``; ``camera_indices (N_cam,) int64``; ``ego_history_xyz (1, 1, 16, 3) float32`` and
        ``ego_history_rot (1, 1, 16, 3, 3) float32`` (t0 ego frame, last row = t0 = identity);
        ``absolute_timestamps (N_cam, F) int64`` µs of the picked frames; ``relative_timestamps (N_cam, F)
        float32`` seconds from the earliest of them; ``frame_indices (N_cam, F) int64`` into each view;
        ``resized (N_cam,) bool`` (frames resized to the native size: an edited camera); ``t0_us () int64``.

    Raises:
        InputError: a camera missing, frames not covering ``t0 - (F-1)·step``, a stale frame, cameras of
            different native sizes, or an ego history that does not end at the identity pose.
    """
    names = sorted(cfg.cameras, key=lambda c: CAMERA_INDEX[c])
    views = [_view_for(inp, n) for n in names]
    step_us = round(cfg.frame_step_s * US)
    targets = -np.arange(cfg.frames_per_camera - 1, -1, -1, dtype=np.int64) * step_us
    max_age = round(cfg.max_frame_age_s * US)
    natives = [_native_size(v) for v in views]
    known = [s for s in natives if s is not None]
    actual = [(int(v.frames.shape[2]), int(v.frames.shape[1])) for v in views]
    fallback = Counter(known or actual).most_common(1)[0][0]
    t0_us = int(inp.meta.get("t0_us", round(inp.t0 * US)))

    frames_out, idx_out, abs_out, resized = [], [], [], []
    for name, view, native in zip(names, views, natives, strict=True):
        src = f"clip {inp.clip} camera {name}"
        f = view.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or len(view.timestamps) != len(f) or len(f) == 0:
            raise InputError(src, "frames (T, H, W, 3) uint8 with one timestamp each",
                             f"{f.shape} {f.dtype} and {len(view.timestamps)} timestamps")
        ts = np.round(np.asarray(view.timestamps, dtype=np.float64) * US).astype(np.int64)
        if np.any(np.diff(ts) < 0):
            raise InputError(src, "frame timestamps in increasing order", "unsorted timestamps")
        idx = np.searchsorted(ts, targets, side="right") - 1
        if idx[0] < 0:
            raise InputError(src, f"a frame at or before t0 - {-targets[0] / US:.3f} s",
                             f"frames from t0 {ts[0] / US:+.3f} s", "pick a later t0")
        age = targets - ts[idx]
        if age.max() > max_age:
            k = int(np.argmax(age))
            raise InputError(src, f"a frame within {cfg.max_frame_age_s} s before t0 {targets[k] / US:+.3f} s",
                             f"the latest one at t0 {ts[idx[k]] / US:+.3f} s", "its frames end before t0")
        target = native or fallback
        picked = f[idx]
        was_resized = (picked.shape[2], picked.shape[1]) != target
        if was_resized:
            picked = _resize(picked, target)
        frames_out.append(np.ascontiguousarray(picked.transpose(0, 3, 1, 2)))
        idx_out.append(idx.astype(np.int64))
        abs_out.append(t0_us + ts[idx])
        resized.append(was_resized)
    shapes = {fr.shape for fr in frames_out}
    if len(shapes) > 1:
        sizes = {n: f"{fr.shape[3]}x{fr.shape[2]}" for n, fr in zip(names, frames_out, strict=True)}
        raise InputError(f"clip {inp.clip}", "cameras of one native size (upstream stacks them)", f"sizes {sizes}")

    xyz, rot = inp.ego.xyz, inp.ego.rot
    if not (np.allclose(xyz[-1], 0.0, atol=1e-3) and np.allclose(rot[-1], np.eye(3), atol=1e-3)):
        raise InputError(f"clip {inp.clip} ego history", "the last pose (t0) at the origin with identity rotation "
                         "(history in the t0 ego frame)", f"xyz {xyz[-1].tolist()}")
    abs_ts = np.stack(abs_out).astype(np.int64)
    return {
        "image_frames": np.stack(frames_out).astype(np.uint8),
        "camera_indices": np.array([CAMERA_INDEX[n] for n in names], dtype=np.int64),
        "ego_history_xyz": np.asarray(xyz, dtype=np.float32).reshape(1, 1, HISTORY_STEPS, 3),
        "ego_history_rot": np.asarray(rot, dtype=np.float32).reshape(1, 1, HISTORY_STEPS, 3, 3),
        "absolute_timestamps": abs_ts,
        "relative_timestamps": ((abs_ts - abs_ts.min()) * 1e-6).astype(np.float32),
        "frame_indices": np.stack(idx_out),
        "resized": np.array(resized, dtype=bool),
        "t0_us": np.array(t0_us, dtype=np.int64),
    }


# ---------------------------------------------------------------------------------------------- worker process
class _WorkerDiedError(Exception):
    pass


def _check_python(cfg: AlpamayoConfig) -> str:
    py = cfg.python or (sys.executable if cfg.dry_run else None)
    if not py:
        raise BackendUnavailableError(
            "Alpamayo-R1 runs in its own Python 3.12 environment (alpamayo_r1, torch, transformers 4.57): set "
            "predict.alpamayo.python to that environment's interpreter, e.g. /opt/alpamayo/.venv/bin/python")
    p = Path(py).expanduser()
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise BackendUnavailableError(
            f"Alpamayo-R1 interpreter {py!r} (predict.alpamayo.python) is not an executable file; point it at the "
            "python of an environment with alpamayo_r1 installed (Python 3.12)")
    return str(p)


def _check_weights(cfg: AlpamayoConfig) -> None:
    if cfg.dry_run:
        return
    m = cfg.model
    p = Path(m).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").is_file():
            raise BackendUnavailableError(f"Alpamayo-R1 checkpoint folder {m!r} has no config.json; expected the "
                                          "folder of a from_pretrained checkpoint (config.json + safetensors)")
        return
    if not _HUB_ID.match(m) or m.startswith((".", "~", "/")):
        raise BackendUnavailableError(f"no Alpamayo-R1 checkpoint at {m!r} (predict.alpamayo.model); give a local "
                                      "checkpoint folder or a hub id cached in the worker's environment")


class AlpamayoPredictor:
    """Alpamayo-R1 through a long-lived worker process in Alpamayo's own environment.

    The worker starts on :meth:`start` or the first :meth:`predict`, loads the model once, and lives until
    :meth:`close` (or garbage collection). Use it as a context manager to be sure it stops.

    Raises:
        BackendUnavailableError: at construction, no usable interpreter or no checkpoint at a local path; at
            start, the worker could not load the model (its message and log tail are included).
    """

    name = "alpamayo_r1"

    def __init__(self, cfg: AlpamayoConfig | None = None) -> None:
        self.cfg = cfg or AlpamayoConfig()
        self.python = _check_python(self.cfg)
        _check_weights(self.cfg)
        self._tmp = Path(tempfile.mkdtemp(prefix="lanepipe-alpamayo-"))
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._lock = threading.RLock()
        self._next_id = 0
        self.starts = 0
        self.info: dict[str, Any] = {}

    # -------------------------------------------------------------------- lifecycle
    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _command(self) -> list[str]:
        c = self.cfg
        # Run a copy from the private temp folder: Python puts a script's folder first on sys.path, and this
        # package's folder holds modules (base.py, stage.py…) that could shadow the worker env's packages.
        script = self._tmp / WORKER_SCRIPT.name
        if not script.is_file():
            shutil.copyfile(WORKER_SCRIPT, script)
        cmd = [self.python, str(script), "--model", c.model, "--device", c.device, "--dtype", c.dtype]
        if c.processor:
            cmd += ["--processor", c.processor]
        if c.dry_run:
            cmd.append("--dry-run")
        return cmd + list(c.worker_args)

    def _log_tail(self, lines: int = 15) -> str:
        if self._log_path is None or not self._log_path.is_file():
            return ""
        text = self._log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def start(self) -> None:
        """Start the worker and wait until its model is loaded (no-op while it runs).

        Raises:
            BackendUnavailableError: the worker exited, reported a load failure, or was not ready in time.
        """
        with self._lock:
            if self.pid is not None:
                return
            with model_load("alpamayo_r1:dry-run" if self.cfg.dry_run else f"alpamayo_r1:{self.cfg.model}"):
                self._start()

    def _start(self) -> None:
        with self._lock:
            self._reap()
            self.starts += 1
            self._log_path = self._tmp / f"worker-{self.starts}.log"
            self._log = self._log_path.open("wb")
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
            env.update({"PYTHONUNBUFFERED": "1", **self.cfg.env})
            self._lines = queue.Queue()
            try:
                proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self._log, text=True, bufsize=1, env=env, cwd=self._tmp)
            except OSError as e:
                raise BackendUnavailableError(f"cannot start the Alpamayo worker with {self.python}: {e}") from None
            self._proc = proc
            self._reader = threading.Thread(target=self._pump, args=(proc, self._lines), daemon=True,
                                            name=f"alpamayo-worker-{proc.pid}")
            self._reader.start()
            try:
                msg = self._receive(self.cfg.startup_timeout_s)
            except TimeoutError:
                self._kill()
                raise BackendUnavailableError(f"the Alpamayo worker did not load {self.cfg.model} within "
                                              f"{self.cfg.startup_timeout_s:.0f} s (startup_timeout_s); log:\n"
                                              f"{self._log_tail()}") from None
            except _WorkerDiedError:
                rc = proc.wait()
                self._reap()
                raise BackendUnavailableError(f"the Alpamayo worker ({self.python}) exited with code {rc} before it "
                                              f"was ready; log:\n{self._log_tail()}") from None
            if msg.get("event") != "ready":
                err = str(msg.get("error", msg))
                hint = (f" — install alpamayo_r1 (and torch, transformers 4.57) into {self.python}'s environment"
                        if msg.get("type") in ("ModuleNotFoundError", "ImportError") else "")
                self._kill()
                raise BackendUnavailableError(f"the Alpamayo worker could not load {self.cfg.model}: {err}{hint}; "
                                              f"log:\n{self._log_tail()}")
            self.info = msg

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _receive(self, timeout: float) -> dict[str, Any]:
        """Next JSON message from the worker. Raises TimeoutError, or _WorkerDiedError at end of output."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                raise TimeoutError from None
            if line is None:
                raise _WorkerDiedError
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue  # not protocol: ignore
            if isinstance(msg, dict):
                return msg

    def _send(self, msg: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise _WorkerDiedError
        try:
            proc.stdin.write(json.dumps(msg) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise _WorkerDiedError from None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
        self._reap()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the worker (asking first, then killing) and remove the temp folder. Safe to call twice."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                try:
                    self._send({"id": 0, "op": "shutdown"})
                    proc.wait(timeout=10)
                except (_WorkerDiedError, subprocess.TimeoutExpired):
                    pass
            self._kill()
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> AlpamayoPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -------------------------------------------------------------------- requests
    def predict(self, inp: PredictorInput) -> Prediction:
        """``(K, 64, 3) float32`` trajectories in the t0 ego frame plus K reasoning texts for one clip.

        Raises:
            InputError: the clip's inputs do not fit (see :func:`build_model_inputs`).
            BackendUnavailableError: the worker cannot be (re)started.
            AlpamayoWorkerError: the model call raised, the worker crashed ``max_restarts + 1`` times, or timed out;
                the message names the clip.
        """
        arrays = build_model_inputs(inp, self.cfg)
        c = self.cfg
        with self._lock:
            self._next_id += 1
            rid = self._next_id
            in_path, out_path = self._tmp / f"req-{rid}.npz", self._tmp / f"res-{rid}.npz"
            np.savez(in_path, **arrays)  # type: ignore[arg-type]
            request = {"id": rid, "op": "predict", "clip": inp.clip, "inputs": str(in_path), "output": str(out_path),
                       "params": {"top_p": c.top_p, "temperature": c.temperature, "num_samples": c.num_samples,
                                  "max_generation_length": c.max_generation_length, "seed": c.seed}}
            t_start = time.monotonic()
            crashes: list[str] = []
            try:
                for _ in range(c.max_restarts + 1):
                    self.start()
                    pid = self.pid
                    try:
                        self._send(request)
                        msg = self._reply(rid, c.request_timeout_s)
                    except _WorkerDiedError:
                        rc = None
                        if self._proc is not None:
                            with contextlib.suppress(subprocess.TimeoutExpired):
                                rc = self._proc.wait(timeout=10)
                        crashes.append(f"pid {pid} exit code {rc}")
                        self._reap()
                        continue
                    except TimeoutError:
                        self._kill()
                        raise AlpamayoWorkerError(f"Alpamayo-R1 on clip {inp.clip}: no answer within "
                                                  f"{c.request_timeout_s:.0f} s (request_timeout_s); worker "
                                                  f"stopped") from None
                    if not msg.get("ok"):
                        raise AlpamayoWorkerError(f"Alpamayo-R1 failed on clip {inp.clip}: {msg.get('type')}: "
                                                  f"{msg.get('error')}\n{msg.get('traceback', '')}".rstrip())
                    return self._prediction(inp, msg, out_path, arrays, pid, time.monotonic() - t_start)
                raise AlpamayoWorkerError(f"the Alpamayo worker crashed on clip {inp.clip} {len(crashes)} time(s) "
                                          f"({'; '.join(crashes)}; max_restarts={c.max_restarts}); log:\n"
                                          f"{self._log_tail()}")
            finally:
                for p in (in_path, out_path):
                    p.unlink(missing_ok=True)

    def _reply(self, rid: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(max(deadline - time.monotonic(), 0.0))
            if msg.get("id") == rid:
                return msg

    def _prediction(self, inp: PredictorInput, msg: dict[str, Any], out_path: Path,
                    arrays: dict[str, npt.NDArray[Any]], pid: int | None, seconds: float) -> Prediction:
        try:
            with np.load(out_path) as npz:
                xyz = np.asarray(npz["pred_xyz"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise AlpamayoWorkerError(f"Alpamayo-R1 on clip {inp.clip}: unreadable worker output {out_path}: "
                                      f"{e}") from None
        k = self.cfg.num_samples
        if xyz.shape != (k, FUTURE_STEPS, 3):
            raise AlpamayoWorkerError(f"Alpamayo-R1 on clip {inp.clip}: expected trajectories ({k}, {FUTURE_STEPS}, "
                                      f"3) from the worker, found {xyz.shape}")
        if not np.all(np.isfinite(xyz)):
            raise AlpamayoWorkerError(f"Alpamayo-R1 on clip {inp.clip}: the worker returned NaN or inf waypoints")
        reasoning = [str(s) for s in msg.get("reasoning") or []]
        meta = {"backend": self.name, "model": self.cfg.model, "dry_run": self.cfg.dry_run, "worker_pid": pid,
                "camera_indices": arrays["camera_indices"].tolist(),
                "absolute_timestamps_us": arrays["absolute_timestamps"].tolist(),
                "resized_cameras": arrays["resized"].tolist(), "seconds": round(seconds, 3),
                "edited_cameras": list(inp.meta.get("edited_cameras") or []),
                "worker_received": msg.get("received") or {}}
        return Prediction(trajectories=xyz, reasoning=reasoning or None, meta=meta)

"""Long-lived Alpamayo-R1 worker, run by :class:`lanepipe.predict.alpamayo.AlpamayoPredictor` in Alpamayo's own
environment (Python 3.12, its transformers pin). It imports nothing from lanepipe: only the standard library and
numpy at start, torch and ``alpamayo_r1`` when the model loads.

Protocol (one JSON object per line; the worker's real stdout carries nothing else — anything the model prints
goes to stderr):

* on start, after loading the model once: ``{"event": "ready", "pid": …, "python": "3.12.…", "dry_run": …}``;
  if loading fails: ``{"event": "fatal", "error": "…", "type": "…"}`` and exit code 3.
* request on stdin: ``{"id": 1, "op": "predict", "clip": "…", "inputs": "/tmp/…/in.npz", "output": "/tmp/…/out.npz",
  "params": {"top_p": …, "temperature": …, "num_samples": …, "max_generation_length": …, "seed": …}}``.
  ``inputs`` holds ``image_frames (N_cam, F, 3, H, W) uint8``, ``camera_indices (N_cam,) int64``,
  ``ego_history_xyz (1, 1, 16, 3) float32``, ``ego_history_rot (1, 1, 16, 3, 3) float32`` (+ timestamps).
* reply on stdout: ``{"id": 1, "ok": true, "output": "…", "reasoning": ["…", …], "received": {"camera_indices":
  […], "frames_sha1": […]}}`` (what it read, per camera) with ``output`` holding
  ``pred_xyz (K, 64, 3) float32`` and ``pred_rot (K, 64, 3, 3) float32`` in the t0 ego frame;
  or ``{"id": 1, "ok": false, "error": "…", "type": "ValueError", "traceback": "…"}``.
* ``{"op": "ping"}`` → ``{"id": …, "ok": true}``; ``{"op": "shutdown"}`` or end of stdin → exit 0.

``--dry-run`` keeps the same process and protocol but does not load a model: it answers with a straight
trajectory at the history's last speed, for testing the plumbing. ``--fault CLIP=raise|exit|hang|print`` (dry-run
only) makes requests for that clip raise an exception, kill the process, never answer, or print to stdout (which
must not reach the protocol), to test error handling.

Model call (NVlabs/alpamayo ``src/alpamayo_r1/test_inference.py``): ``helper.create_message`` on the
``(N_cam · F, 3, H, W)`` frames, ``processor.apply_chat_template(…, continue_final_message=True)``, then
``model.sample_trajectories_from_data_with_vlm_rollout`` under ``torch.autocast``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

import numpy as np

HORIZON = 64
DT = 0.1


class _Backend:
    """The loaded model (or the dry-run stand-in)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.faults = dict(f.split("=", 1) for f in args.fault)
        self.model: Any = None
        self.processor: Any = None
        if not args.dry_run:
            self._load()

    def _load(self) -> None:
        import torch
        from alpamayo_r1 import helper
        from alpamayo_r1.models.alpamayo_r1 import AlpamayoR1

        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[self.args.dtype]
        self.torch = torch
        self.helper = helper
        self.dtype = dtype
        self.model = AlpamayoR1.from_pretrained(self.args.model, dtype=dtype).to(self.args.device)
        self.model.eval()
        if self.args.processor:
            from transformers import AutoProcessor

            proc = AutoProcessor.from_pretrained(self.args.processor, min_pixels=helper.MIN_PIXELS,
                                                 max_pixels=helper.MAX_PIXELS)  # type: ignore[no-untyped-call]
            proc.tokenizer = self.model.tokenizer
            self.processor = proc
        else:
            self.processor = helper.get_processor(self.model.tokenizer)

    def predict(self, clip: str, data: dict[str, np.ndarray], params: dict[str, Any]) -> tuple[
            np.ndarray, np.ndarray, list[str]]:
        k = int(params.get("num_samples", 1))
        if self.args.dry_run:
            fault = self.faults.get(clip)
            if fault == "raise":
                raise RuntimeError(f"injected failure for clip {clip}")
            if fault == "exit":
                os._exit(17)
            if fault == "hang":
                time.sleep(3600)
            if fault == "print":
                print("library chatter on stdout", flush=True)  # noqa: T201 - must not reach the protocol
            return _straight(data, k)
        return self._model_call(data, params, k)

    def _model_call(self, data: dict[str, np.ndarray], params: dict[str, Any], k: int) -> tuple[
            np.ndarray, np.ndarray, list[str]]:
        torch = self.torch
        frames = torch.from_numpy(np.ascontiguousarray(data["image_frames"]))  # (N_cam, F, 3, H, W) uint8
        messages = self.helper.create_message(frames.flatten(0, 1))
        tokenized = self.processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=False,
                                                       continue_final_message=True, return_dict=True,
                                                       return_tensors="pt")
        model_inputs = {
            "tokenized_data": tokenized,
            "ego_history_xyz": torch.from_numpy(np.asarray(data["ego_history_xyz"], dtype=np.float32)),
            "ego_history_rot": torch.from_numpy(np.asarray(data["ego_history_rot"], dtype=np.float32)),
        }
        model_inputs = self.helper.to_device(model_inputs, self.args.device)
        seed = int(params.get("seed", 42))
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        with torch.no_grad(), torch.autocast(self.args.device.split(":")[0], dtype=self.dtype):
            pred_xyz, pred_rot, extra = self.model.sample_trajectories_from_data_with_vlm_rollout(
                data=model_inputs, top_p=float(params["top_p"]), temperature=float(params["temperature"]),
                num_traj_samples=k, max_generation_length=int(params["max_generation_length"]), return_extra=True)
        xyz = pred_xyz.float().cpu().numpy()[0, 0]  # (B, n_sets, K, 64, 3) -> (K, 64, 3)
        rot = pred_rot.float().cpu().numpy()[0, 0]
        cot = extra.get("cot") if isinstance(extra, dict) else None
        reasoning = [str(s) for s in np.asarray(cot)[0, 0].tolist()] if cot is not None else [""] * k
        return xyz.astype(np.float32), rot.astype(np.float32), reasoning


def _straight(data: dict[str, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Dry-run answer: straight ahead along the t0 heading at the history's last speed."""
    hist = np.asarray(data["ego_history_xyz"], dtype=np.float64).reshape(-1, 3)
    speed = float(np.linalg.norm(hist[-1] - hist[-2]) / DT) if len(hist) >= 2 else 0.0
    steps = np.arange(1, HORIZON + 1, dtype=np.float64) * DT * speed
    xyz = np.zeros((k, HORIZON, 3), np.float32)
    xyz[:, :, 0] = steps
    rot = np.broadcast_to(np.eye(3, dtype=np.float32), (k, HORIZON, 3, 3)).copy()
    text = f"dry run: keep going straight at {speed:.2f} m/s"
    return xyz, rot, [text] * k


def _received(data: dict[str, np.ndarray]) -> dict[str, Any]:
    """What the worker read, per camera (in ``camera_indices`` order): the SHA-1 of its ``(F, 3, H, W)`` frames, so
    the caller can tell which camera's pixels (original or edited) reached the model."""
    frames = data.get("image_frames")
    idx = data.get("camera_indices")
    if frames is None or idx is None:
        return {}
    return {"camera_indices": [int(i) for i in idx],
            "frames_sha1": [hashlib.sha1(np.ascontiguousarray(f).tobytes()).hexdigest() for f in frames]}


def _send(out: IO[str], msg: dict[str, Any]) -> None:
    out.write(json.dumps(msg) + "\n")
    out.flush()


def _serve(backend: _Backend, proto: IO[str]) -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        rid: Any = None
        try:
            req = json.loads(line)
            rid = req.get("id")
            op = req.get("op")
            if op == "shutdown":
                _send(proto, {"id": rid, "ok": True})
                return 0
            if op == "ping":
                _send(proto, {"id": rid, "ok": True, "pid": os.getpid()})
                continue
            if op != "predict":
                raise ValueError(f"unknown op {op!r}")
            with np.load(req["inputs"]) as npz:
                data = {name: npz[name] for name in npz.files}
            xyz, rot, reasoning = backend.predict(str(req.get("clip", "?")), data, dict(req.get("params", {})))
            out = Path(req["output"])
            tmp = out.with_name(out.name + ".part.npz")
            np.savez(tmp, pred_xyz=xyz, pred_rot=rot)
            tmp.replace(out)
            _send(proto, {"id": rid, "ok": True, "output": req["output"], "reasoning": reasoning,
                          "received": _received(data)})
        except Exception as e:  # every failure goes back to the caller
            _send(proto, {"id": rid, "ok": False, "error": str(e), "type": type(e).__name__,
                          "traceback": traceback.format_exc(limit=8)})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--model", default="nvidia/Alpamayo-R1-10B", help="hub id or local checkpoint folder")
    ap.add_argument("--processor", default="", help="local Qwen3-VL processor folder (default: helper's hub id)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--dry-run", action="store_true", help="no model: straight trajectory at the history speed")
    ap.add_argument("--fault", action="append", default=[], metavar="CLIP=raise|exit|hang|print",
                    help="dry-run only: fail requests for CLIP")
    args = ap.parse_args(argv)
    if args.fault and not args.dry_run:
        ap.error("--fault needs --dry-run")
    # The protocol owns the real stdout; everything printed by libraries goes to stderr.
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        backend = _Backend(args)
    except BaseException as e:  # any load failure, SystemExit included
        traceback.print_exc(file=sys.stderr)
        _send(proto, {"event": "fatal", "error": f"{type(e).__name__}: {e}", "type": type(e).__name__})
        return 3
    _send(proto, {"event": "ready", "pid": os.getpid(), "python": sys.version.split()[0], "dry_run": args.dry_run,
                  "model": args.model})
    return _serve(backend, proto)


if __name__ == "__main__":
    sys.exit(main())

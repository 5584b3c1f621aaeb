"""Serve with resident models: latency of the first request (each stage's model deployment loads its models)
against the second (must load nothing), through the real Ray Serve app on loopback (ingress + ``lanepipe-segment``,
``lanepipe-edit``, ``lanepipe-evaluate``).

Starts a private local Ray (every CPU and GPU of the machine), the app on a free 127.0.0.1 port, renders the
sample clip and submits it twice, one after the other, polling each to done. Prints per request: HTTP submit →
done seconds, the job's ``model_loads`` and the run's status; then, per model deployment, the loads and load seconds
and the Ray resources its replica got (``/v1/metrics``), and the machine and date.

Sizes: ``tiny`` (CPU: tiny-random SAM2 + FLUX/CogVideoX painter + Qwen2.5-VL judge, 4 frames 160x96, segment
→ edit) and ``full`` (GPU: random-init SAM2.1 hiera-large, FLUX.1 Fill + CogVideoX-5B-I2V, Qwen2.5-VL-7B, 16
frames 960x540, 20 FLUX + 20 CogVideoX steps, segment → edit; refused by the app where Ray sees no GPU).

    .venv/bin/python benchmarks/serve_resident.py --size tiny
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from _common import machine

from lanepipe import torchkit
from lanepipe.sample import write_sample

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"frames": 4, "width": 160, "height": 96,
             "config": {"segment": {"backend": "sam2", "sam2": {"preset": "tiny-random"}, "overlay": False},
                        "edit": {"backend": "flux_cogvideox", "preset": "tiny-random", "qa": {"max_iterations": 1}},
                        "verify": {"backend": "qwen_vl"}}},
    "full": {"frames": 16, "width": 960, "height": 540,
             # one GPU shared: SAM2 0.2 + the edit stack 0.8 (the defaults, 0.5 + 1, cannot both be reserved)
             "config": {"segment": {"backend": "sam2", "sam2": {"preset": "random-init"},
                                    "resources": {"num_gpus": 0.2}},
                        "edit": {"backend": "flux_cogvideox", "preset": "random-init", "qa": {"max_iterations": 1},
                                 "generative": {"flux_steps": 20, "video_steps": 20},
                                 "resources": {"num_gpus": 0.8}},
                        "verify": {"backend": "qwen_vl"}}},
}


def sized_config(size: str, gpu_gib: float | None) -> dict[str, Any]:
    """The base config of ``size``; on a GPU too small for the whole edit stack (an H100's 80 GB,
    :func:`lanepipe.edit.generative.published.parks_between_phases`) the full edit parks the idle phase's pipeline
    in host memory."""
    from lanepipe.edit.generative.published import parks_between_phases

    cfg: dict[str, Any] = json.loads(json.dumps(SIZES[size]["config"]))
    if size == "full" and parks_between_phases(gpu_gib):
        cfg["edit"]["generative"]["unload_between_phases"] = True
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_request(base: str, clip: Path, stages: str, deadline_s: float) -> dict[str, Any]:
    t = time.perf_counter()
    with clip.open("rb") as f:
        r = requests.post(base + "v1/edits", files={"clip": (clip.name, f, "video/mp4")},
                          data={"instructions": ["double yellow solid"], "stages": stages}, timeout=60)
    r.raise_for_status()
    url = f"{base}v1/edits/{r.json()['id']}"
    while time.perf_counter() - t < deadline_s:
        job: dict[str, Any] = requests.get(url, timeout=30).json()
        if job["status"] in ("done", "failed"):
            return {"seconds": round(time.perf_counter() - t, 2), "status": job["status"],
                    "model_loads": job["model_loads"], "error": job["error"]}
        time.sleep(0.2)
    raise TimeoutError(f"{url}: not finished within {deadline_s} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--stages", default="segment,edit")
    ap.add_argument("--deadline", type=float, default=1800.0, help="seconds per request")
    args = ap.parse_args()
    size = SIZES[args.size]

    import ray
    from ray import serve

    from lanepipe.serve.app import ServeSettings, start

    tmp = Path(tempfile.mkdtemp(prefix="lanepipe-serve-resident-"))
    clip = write_sample(tmp / "clip", num_frames=size["frames"], width=size["width"], height=size["height"])
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        settings = ServeSettings(output=str(tmp / "runs"), replica_cpus=0,
                                 base_config=sized_config(args.size, torchkit.smallest_gpu_gib()))
        t = time.perf_counter()
        base = start(settings, port=free_port(), ready_timeout_s=600)
        print(f"app ready in {time.perf_counter() - t:.1f} s: {base}", flush=True)
        results = []
        for name in ("first", "second"):
            results.append(one_request(base, clip, args.stages, args.deadline))
            print(f"{name} request finished: {results[-1]}", flush=True)
        metrics = requests.get(base + "v1/metrics", timeout=60).json()["models"]
        for name, r in zip(("first", "second"), results, strict=True):
            print(f"{name} request: {r['seconds']} s, model_loads {r['model_loads']}, {r['status']}"
                  + (f" ({r['error']})" if r["error"] else ""))
        for name, m in metrics.items():
            if name != "lanepipe-models":
                print(f"{name}: model_loads {json.dumps(m['model_loads'])}, load_s {json.dumps(m['model_load_s'])}, "
                      f"items {m['calls']}, resources {json.dumps(m['resources'])}")
        print("machine:", machine(), "| date:", time.strftime("%Y-%m-%d"))
        ok = all(r["status"] == "done" for r in results) and results[1]["model_loads"] == 0
        return 0 if ok else 1
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())

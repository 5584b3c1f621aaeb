"""One Serve deployment per model stage (issue 14, item 5), through real Ray Serve on local Ray with tiny-random
models on CPU: the ingress composes ``lanepipe-segment`` (tiny-random SAM2) → ``lanepipe-edit`` (tiny-random FLUX
Fill + CogVideoX painter, QA loop) → ``lanepipe-evaluate`` (lane_keep) → render; two jobs load each stage's models
once; each deployment runs with its stage's Ray resources; killing the edit replica between jobs loses nothing.
The resource rule matches batch runs: a GPU backend reserves its GPU share only on a cluster with GPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
TINY = {"input": {"max_frames": 4},
        "segment": {"backend": "sam2", "sam2": {"preset": "tiny-random"}, "overlay": False},
        "edit": {"backend": "flux_cogvideox", "preset": "tiny-random", "qa": {"max_iterations": 1}}}
#: The session's local Ray has one logical GPU: SAM2's default 0.5 and the painter set to 0.5 share it.
LIVE = {**TINY, "edit": {**TINY["edit"], "resources": {"num_gpus": 0.5}}}
APP = "stages"


def _models(base: str) -> dict[str, Any]:
    r = requests.get(base + "v1/metrics", timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json()["models"])


def test_stage_options_follow_the_backends_and_the_cluster(ray_local) -> None:
    """Per stage: the backend's default GPU share on a cluster with GPUs, none on a GPU-less one (a fresh Ray in
    a subprocess), an explicit ``resources.num_gpus`` either way; autoscaling bounds global with stage overrides."""
    from lanepipe.serve.models import stage_options
    from lanepipe.serve.settings import ReplicaBounds, ServeSettings, parse_replicas

    settings = ServeSettings(output="runs", base_config=TINY, min_replicas=1, max_replicas=2,
                             stage_replicas={"edit": ReplicaBounds(min_replicas=0, max_replicas=3)})
    gpu = stage_options(settings)  # the session's Ray has a (logical) GPU
    assert {n: o["ray_actor_options"]["num_gpus"] for n, o in gpu.items()} == {
        "segment": 0.5, "edit": 1.0, "evaluate": 0.0}
    assert {n: o["name"] for n, o in gpu.items()} == {
        "segment": "lanepipe-segment", "edit": "lanepipe-edit", "evaluate": "lanepipe-evaluate"}
    assert gpu["segment"]["ray_actor_options"]["num_cpus"] == 1.0  # replica_cpus unset: the stage's own CPUs
    assert gpu["segment"]["autoscaling_config"]["max_replicas"] == 2
    assert (gpu["edit"]["autoscaling_config"]["min_replicas"], gpu["edit"]["autoscaling_config"]["max_replicas"]) == (
        0, 3)
    assert parse_replicas("edit=2:5") == ("edit", ReplicaBounds(min_replicas=2, max_replicas=5))
    assert parse_replicas("segment=3") == ("segment", ReplicaBounds(min_replicas=3, max_replicas=3))
    for bad in ("render=1:2", "edit", "edit=a:b"):
        with pytest.raises(ValueError, match="STAGE=MIN:MAX"):
            parse_replicas(bad)
    with pytest.raises(ValueError, match="min_replicas"):
        ServeSettings(min_replicas=3, max_replicas=2)

    code = ("import json, ray\n"
            "ray.init(address='local', num_cpus=1, num_gpus=0, include_dashboard=False, logging_level='ERROR')\n"
            "from lanepipe.serve.models import stage_options\n"
            "from lanepipe.serve.settings import ServeSettings\n"
            f"for cfg in ({TINY!r}, {LIVE!r}):\n"
            "    o = stage_options(ServeSettings(output='runs', base_config=cfg))\n"
            "    print(json.dumps({n: v['ray_actor_options']['num_gpus'] for n, v in o.items()}))\n"
            "ray.shutdown()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    defaults, explicit = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    assert defaults == {"segment": 0.0, "edit": 0.0, "evaluate": 0.0}  # GPU backends fall back to CPU
    assert explicit == {"segment": 0.0, "edit": 0.5, "evaluate": 0.0}  # the config's own share is kept


def test_replicas_that_cannot_all_be_placed_are_scaled_to_fit(ray_local) -> None:
    """On the session's one (logical) GPU and 2 CPUs, SAM2's default 0.5 GPU beside the painter's 1, and the
    ingress plus three model replicas at 1 CPU each, cannot all be reserved: Serve would wait for the replicas
    forever (the hang of 2026-12-05 on one H200; on a 2-core laptop with the defaults). The asks are scaled so that
    the minimum replicas fit, in proportion, with a warning naming each ask; asks that fit and a GPU-less cluster
    keep them. ``lanepipe serve`` fits on the local instance it starts, not on a joined cluster (a RayService
    builds the app with the settings' default: asks kept, the autoscaler adds nodes)."""
    from lanepipe.config import load_config
    from lanepipe.serve.app import build_app
    from lanepipe.serve.models import fit_replicas, gpu_demand, stage_options
    from lanepipe.serve.settings import ServeSettings

    options = stage_options(ServeSettings(output="runs", base_config=TINY))
    fitted, ingress, notes = fit_replicas(options, 1.0, 2.0, 1.0)
    gpus = {s: fitted[s]["ray_actor_options"]["num_gpus"] for s in ("segment", "edit")}
    assert gpus == {"segment": 0.33, "edit": 0.66} and sum(n * g for n, g in gpu_demand(fitted).values()) <= 1.0
    assert ingress == 0.5 and all(o["ray_actor_options"]["num_cpus"] == 0.5 for o in fitted.values())
    assert options["edit"]["ray_actor_options"]["num_gpus"] == 1.0  # the caller's options are left as they were
    assert len(notes) == 2
    assert ("4 CPUs (the ingress 1 x 1, lanepipe-segment 1 x 1, lanepipe-edit 1 x 1, lanepipe-evaluate 1 x 1)"
            in notes[0])
    assert "1.5 GPUs (lanepipe-segment 1 x 0.5, lanepipe-edit 1 x 1) but the Ray cluster has 1" in notes[1]
    # what fits stays: the fitted options, the LIVE shares with no CPU for the ingress, zero minimum replicas
    assert fit_replicas(fitted, ingress, 2.0, 1.0)[2] == []
    live = stage_options(ServeSettings(output="runs", base_config=LIVE, stage_replicas={"evaluate": {
        "min_replicas": 0, "max_replicas": 1}}))
    assert fit_replicas(live, 0.0, 2.0, 1.0)[2] == []
    none = fit_replicas(options, 1.0, 8.0, 0.0)  # no GPU at all: GPU asks kept (require_gpus / an autoscaler)
    assert none[0]["edit"]["ray_actor_options"]["num_gpus"] == 1.0 and none[2] == []
    build_app(ServeSettings(output="runs", base_config=TINY, fit_to_cluster=True))
    assert not ServeSettings(output="runs").fit_to_cluster
    local, joined = (load_config(None, sets).ray for sets in ([], ["ray.address=auto"]))
    assert local.fits_pools() and not joined.fits_pools()
    assert not load_config(None, ["ray.fit_pools=false"]).ray.fits_pools()


def test_serve_with_default_replica_cpus_comes_up_on_one_cpu(tmp_path: Path) -> None:
    """``lanepipe serve`` with its defaults (1 CPU for the ingress and for each model replica) on a 1-CPU Ray
    instance, through the real command: the app becomes ready and answers (it used to wait forever for replicas
    that could not be placed)."""
    import signal
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "lanepipe.cli", "serve", "--port", str(port), "-o",
                             str(tmp_path / "runs"), "--set", "ray.num_cpus=1", "--set", "ray.num_gpus=0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline, up = time.monotonic() + 240, False
        while time.monotonic() < deadline and proc.poll() is None and not up:
            try:
                up = requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).status_code == 200
            except requests.ConnectionError:
                time.sleep(2)
        assert up, f"serve not ready (exit {proc.poll()})"
        models = _models(f"http://127.0.0.1:{port}/")
        assert set(models) >= {"lanepipe-segment", "lanepipe-edit", "lanepipe-evaluate"}, models
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert "serve: the replicas ask for 4 CPUs" in out, out[-3000:]


def test_one_load_per_stage_deployment_and_an_edit_replica_restart_loses_nothing(serve_app, tmp_path: Path) -> None:
    import ray
    from ray import serve

    from lanepipe.sample import write_sample
    from lanepipe.serve.app import ServeSettings

    clip = write_sample(tmp_path / "clip", num_frames=4, width=160, height=96)
    settings = ServeSettings(output=str(tmp_path / "runs"), replica_cpus=0, base_config=LIVE)
    app = serve_app
    base = app.start(settings, APP, ready_timeout_s=300)

    deployments = serve.status().applications[APP].deployments
    assert set(deployments) == {"lanepipe", "lanepipe-segment", "lanepipe-edit", "lanepipe-evaluate"}
    assert {d.status for d in deployments.values()} == {"HEALTHY"}

    first = app.submit_and_wait(clip, ["double yellow solid"], "all", timeout=240)
    second = app.submit_and_wait(clip, ["double yellow solid"], "all", timeout=240)
    assert first["status"] == second["status"] == "done", (first["error"], second["error"])
    assert first["links"]["comparison"] and first["edits"][0]["predictions"][0]["status"] == "ok"
    models = _models(base)
    seg, edit, ev = (models[f"lanepipe-{s}"] for s in ("segment", "edit", "evaluate"))
    # each replica was scheduled with its stage's resources: SAM2's default share, the painter's configured one
    assert seg["resources"].get("GPU") == 0.5 and edit["resources"].get("GPU") == 0.5
    assert not ev["resources"].get("GPU")
    # one load per model per deployment for both jobs: SAM2 once; the painter's FLUX + CogVideoX once
    assert seg["model_loads"] == {"segment": 1}
    assert edit["model_loads"]["edit"] >= 2 and ev["model_loads"] == {}
    assert first["model_loads"] == 1 + edit["model_loads"]["edit"] and second["model_loads"] == 0
    assert min(seg["calls"], edit["calls"], ev["calls"]) >= 2  # each job's items went through each deployment
    assert models["lanepipe-models"]["jobs"] == 2
    manifest = json.loads((tmp_path / "runs" / first["id"] / "manifest.json").read_text())
    assert manifest["model_loads"]["segment"] == 1 and manifest["model_loads"]["render"] == 0

    # kill the edit replica; the next job's edit call reaches it dead, is sent again and lands on its successor
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith(f"SERVE_REPLICA::{APP}#lanepipe-edit#")]
    assert len(names) == 1, names
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    third = app.submit_and_wait(clip, ["double yellow solid"], "all", timeout=240)
    assert third["status"] == "done", third["error"]
    assert third["model_loads"] == edit["model_loads"]["edit"]  # the new edit replica loads once; SAM2 stays
    again = requests.get(f"{base}v1/edits/{first['id']}", timeout=10).json()
    assert again["status"] == "done" and again["model_loads"] == first["model_loads"]
    assert requests.get(f"http://127.0.0.1:{app.port}{again['links']['edited']}", timeout=10).status_code == 200

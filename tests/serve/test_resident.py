"""Serve with resident models (issue 14, item 5), through real Ray Serve on local Ray: the model deployment loads
the tiny-random SAM2 once, a second request loads nothing, ``/v1/metrics`` counts the loads per deployment, and
job state survives redeploying the app (a finished job reads back done, a job cut short reads interrupted).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.ray

BASE = {"input": {"max_frames": 4},
        "segment": {"backend": "sam2", "sam2": {"preset": "tiny-random"}, "overlay": False}}


def test_two_requests_one_load_and_state_survives_a_redeploy(serve_app, tmp_path: Path) -> None:
    from ray import serve

    from lanepipe.sample import write_sample
    from lanepipe.serve.app import ServeSettings

    clip = write_sample(tmp_path / "clip", num_frames=4, width=160, height=96)
    settings = ServeSettings(output=str(tmp_path / "runs"), replica_cpus=0, base_config=BASE, max_replicas=2)
    app = serve_app
    base = app.start(settings, "resident")

    first = app.submit_and_wait(clip, ["none"], "segment")
    second = app.submit_and_wait(clip, ["none"], "segment")
    assert first["status"] == second["status"] == "done", (first["error"], second["error"])
    assert first["model_loads"] >= 1  # the replica's first job loads SAM2
    assert second["model_loads"] == 0  # the second finds it resident
    metrics = requests.get(base + "v1/metrics", timeout=30).json()["models"]["lanepipe-models"]
    assert metrics["model_loads"] == {"segment": first["model_loads"]} and metrics["jobs"] == 2

    # a job cut short by the redeploy reads back interrupted; the finished one reads back done, with its files
    third = app.submit(clip, ["none"], "segment")
    app.wait(third, until=("running", "done", "failed"))
    serve.delete("resident")
    base = app.start(settings, "resident")
    again = requests.get(f"{base}v1/edits/{first['id']}", timeout=10).json()
    assert again["status"] == "done" and again["model_loads"] == first["model_loads"]
    assert requests.get(again["links"]["original"] and f"http://127.0.0.1:{app.port}" + again["links"]["original"],
                        timeout=10).status_code == 200
    cut = requests.get(f"{base}v1/edits/{third}", timeout=10).json()
    if cut["status"] != "done":  # it could have finished before the delete reached its replica
        assert cut["status"] == "failed" and cut["interrupted"] and "interrupted" in cut["error"]
    fresh = app.submit_and_wait(clip, ["none"], "segment")
    assert fresh["status"] == "done" and fresh["model_loads"] >= 1  # a new replica loads again, once

"""Runs that read clips from and write runs to real object stores on loopback (SeaweedFS S3, fake-gcs-server).

Covers: a segment+edit sweep S3 → GCS with a bad clip and a resume, the same GCS → S3 through Ray (a driver
joining the session's local Ray cluster, workers configured through ``runtime_env``), ``chunks+s3://`` inputs
S3 → S3, and retries with back-off while the S3 server is down.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.io import storage
from lanepipe.io.video import decode
from lanepipe.lanes.instructions import parse_instruction

REPO = Path(__file__).resolve().parents[2]
MAX_FRAMES = 4
INSTRUCTION = "double yellow solid"
BAD_BYTES = b"this is not a video\n" * 64


def _bucket(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _two_short_clips(real_clips: list[Path]) -> list[Path]:
    """The two smallest real clips (fastest to upload and decode)."""
    return sorted(real_clips, key=lambda p: p.stat().st_size)[:2]


def _upload_inputs(fs: Any, bucket: str, clips: list[Path]) -> dict[str, bytes]:
    """Put ``clips`` and one bad file under ``bucket/clips/``; return what was uploaded, by key."""
    fs.mkdir(bucket)
    uploaded = {f"{bucket}/clips/{p.name}": p.read_bytes() for p in clips}
    uploaded[f"{bucket}/clips/bad.mp4"] = BAD_BYTES
    for key, data in uploaded.items():
        fs.pipe_file(key, data)
    return uploaded


def _cfg(inputs: list[str], output: str, *sets: str) -> Any:
    return load_config(None, [f"input.max_frames={MAX_FRAMES}", *sets],
                       base={"input": {"paths": inputs}, "output": output})


def _read(url: str) -> bytes:
    return storage.read_bytes(url)


def _npz(url: str) -> np.ndarray:
    with np.load(io.BytesIO(_read(url))) as z:
        assert set(z.keys()) <= {"arr_0", "hood_top"}  # masks, and the hood's profile where the clip shows one
        return np.asarray(z["arr_0"])


def _check_run(fs: Any, proto: str, bucket: str, prefix: str, run_id: str, ok: dict[str, Path], bad: list[str],
               stages: list[str]) -> pd.DataFrame:
    """Check a finished run in ``proto://bucket/prefix/run_id`` and that nothing was written elsewhere."""
    import cv2

    run = f"{proto}://{bucket}/{prefix}/{run_id}"
    df = pd.read_parquet(io.BytesIO(_read(f"{run}/results.parquet")))
    seg = df[df.stage == "segment"].set_index("clip")
    assert set(seg.index) == set(ok) | set(bad)
    assert (seg.loc[list(ok), "status"] == "ok").all(), seg[["status", "error"]]
    for name in bad:
        assert seg.loc[name, "status"] == "failed" and seg.loc[name, "error_type"] == "InputError"
        assert "bad.mp4" in seg.loc[name, "error"]

    manifest = json.loads(_read(f"{run}/manifest.json"))
    assert manifest["run_id"] == run_id and manifest["config"]["output"] == f"{proto}://{bucket}/{prefix}"
    assert manifest["stages"]["segment"]["ok"] == len(ok)
    assert manifest["stages"]["segment"]["status"] == ("partial" if bad else "done")
    sha = {i["clip"]: i["sha256"] for i in manifest["inputs"]}
    for name, path in ok.items():
        assert sha[name] == hashlib.sha256(path.read_bytes()).hexdigest()

    for name in ok:
        t = int(seg.loc[name, "num_frames"])
        assert t == MAX_FRAMES
        d = f"{run}/segment/{name}"
        pngs = sorted(p.rsplit("/", 1)[1] for p in fs.glob(f"{bucket}/{prefix}/{run_id}/segment/{name}/masks/*.png"))
        assert pngs == [f"{i:05d}.png" for i in range(t)]
        m0 = cv2.imdecode(np.frombuffer(_read(f"{d}/masks/00000.png"), np.uint8), cv2.IMREAD_UNCHANGED)
        assert m0 is not None and set(np.unique(m0)) <= {0, 255}
        ids = _npz(f"{d}/all_masks.npz")
        assert ids.shape == (t, *m0.shape) and ids.dtype == np.uint8 and set(np.unique(ids)) <= {0, 1}
        assert np.array_equal(ids[0] * 255, m0) and ids.any()
        assert np.array_equal(_npz(f"{run}/videopainter/masks/{name}/all_masks.npz"), ids)
        raw = decode(f"{run}/videopainter/raw_videos/{name}/{name}.0.mp4", target_fps=None)
        assert raw.frames.shape[:3] == (t, *m0.shape)
        assert json.loads(_read(f"{d}/meta.json"))["clip"] == name
    meta_csv = pd.read_csv(io.BytesIO(_read(f"{run}/videopainter/meta.csv")))
    assert sorted(meta_csv.path) == sorted(f"{n}.0.mp4" for n in ok)

    if "edit" in stages:
        edit = df[(df.stage == "edit") & (df.status == "ok")].set_index("clip")
        assert set(edit.index) == set(ok) and (edit.instruction == INSTRUCTION).all()
        slug = parse_instruction(INSTRUCTION).slug
        for name in ok:
            d = f"{run}/edit/{name}/{slug}"
            for f in ("edited.mp4", "first_frame.png", "qa.json", "lanes.json", "meta.json"):
                assert storage.exists(f"{d}/{f}"), f"{d}/{f} missing"
            assert decode(f"{d}/edited.mp4", target_fps=None).num_frames == MAX_FRAMES
            assert len(json.loads(_read(f"{d}/qa.json"))["iterations"]) == 1  # edit.qa.max_iterations=1

    # everything this run wrote is under its run prefix, and no temporary object is left behind
    written = [k for k in fs.find(bucket) if k.startswith(f"{bucket}/{prefix}/")]
    assert written and all(k.startswith(f"{bucket}/{prefix}/{run_id}/") for k in written), written
    assert not [k for k in written if ".tmp" in k or k.rsplit("/", 1)[1].startswith(".")]
    return df


def _bucket_keys(fs: Any, bucket: str, exclude_prefix: str | None = None) -> dict[str, int]:
    keys = {k: int(fs.info(k)["size"]) for k in fs.find(bucket)}
    return {k: v for k, v in keys.items() if not (exclude_prefix and k.startswith(f"{bucket}/{exclude_prefix}/"))}


def test_sweep_s3_to_gcs_records_bad_clip_and_resume_skips_finished(object_stores: Any, real_clips: list[Path]
                                                                     ) -> None:
    s3, gs = object_stores.s3fs(), object_stores.gcsfs()
    src, dst = _bucket("lp-in"), _bucket("lp-out")
    clips = _two_short_clips(real_clips)
    uploaded = _upload_inputs(s3, src, clips)
    gs.mkdir(dst)
    cfg = _cfg([f"s3://{src}/clips/"], f"gs://{dst}/runs", "stages=[segment,edit]", "edit.qa.max_iterations=1",
               f"edit.instructions=[{INSTRUCTION}]")

    summary = pipeline.run(cfg, executor="sequential")

    assert summary.url == f"gs://{dst}/runs/{summary.run_id}"
    ok = {p.stem: p for p in clips}
    _check_run(gs, "gs", dst, "runs", summary.run_id, ok, ["bad"], ["segment", "edit"])
    assert {k: len(v) for k, v in uploaded.items()} == _bucket_keys(s3, src)  # the inputs are untouched
    assert all(k.startswith(f"{dst}/runs/{summary.run_id}/") for k in gs.find(dst))

    # resume: same run id → the finished clips are skipped (their objects are not rewritten), the bad one fails again
    marker = f"{dst}/runs/{summary.run_id}/segment/{clips[0].stem}/meta.json"
    before = gs.info(marker)
    again = pipeline.run(cfg.model_copy(update={"run_id": summary.run_id}), executor="sequential")
    assert again.run_id == summary.run_id
    rows = pd.DataFrame(again.rows)
    done = rows[rows["clip"].isin(list(ok))]
    assert len(done) == 4 and done.skipped.all() and (done.status == "ok").all()
    assert again.skipped == 4
    assert set(rows[rows.status != "ok"]["clip"]) == {"bad"}
    gs.invalidate_cache()
    after = gs.info(marker)
    assert before["generation"] and after["generation"] == before["generation"]  # not rewritten
    _check_run(gs, "gs", dst, "runs", summary.run_id, ok, ["bad"], ["segment", "edit"])


DRIVER = textwrap.dedent("""
    import json, sys
    import ray
    from lanepipe import pipeline
    from lanepipe.config import load_config
    from lanepipe.io import storage

    address, cfg_json = sys.argv[1], sys.argv[2]
    # a driver joining a running cluster: its workers get the storage settings only through runtime_env
    ray.init(address=address, runtime_env={"env_vars": storage.storage_env()}, logging_level="WARNING",
             log_to_driver=False)
    s = pipeline.run(load_config(None, [], base=json.loads(cfg_json)))
    print("SUMMARY " + json.dumps({"run_id": s.run_id, "url": s.url, "rows": s.rows}, default=str))
""")


@pytest.mark.ray
def test_sweep_gcs_to_s3_through_ray(object_stores: Any, ray_local: Any, real_clips: list[Path]) -> None:
    """Ray run on the session's local cluster; the object-store settings reach the workers via runtime_env.

    ``ray_local`` may have started before this test set its environment (workers inherit the environment of the
    process that started Ray, not later changes), so the run goes through a second driver that joins the same
    cluster with ``runtime_env={"env_vars": storage_env()}`` — what a driver joining a real cluster does too.
    """
    s3, gs = object_stores.s3fs(), object_stores.gcsfs()
    src, dst = _bucket("lp-in"), _bucket("lp-out")
    clips = _two_short_clips(real_clips)
    uploaded = _upload_inputs(gs, src, clips)
    s3.mkdir(dst)
    cfg = _cfg([f"gs://{src}/clips/*.mp4"], f"s3://{dst}/runs", "stages=[segment,edit]", "edit.qa.max_iterations=1",
               f"edit.instructions=[{INSTRUCTION}]", "segment.resources.concurrency=1",
               "edit.resources.concurrency=1")
    address = ray_local.get_runtime_context().gcs_address
    env = {**os.environ, **object_stores.env, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, address, cfg.model_dump_json()], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SUMMARY "))
    summary = json.loads(line.removeprefix("SUMMARY "))
    assert summary["url"] == f"s3://{dst}/runs/{summary['run_id']}"
    ok = {p.stem: p for p in clips}
    _check_run(s3, "s3", dst, "runs", summary["run_id"], ok, ["bad"], ["segment", "edit"])
    assert {k: len(v) for k, v in uploaded.items()} == _bucket_keys(gs, src)


def test_chunks_s3_selects_chunks_and_writes_run_to_s3(object_stores: Any, real_clip: Path) -> None:
    s3 = object_stores.s3fs()
    bucket = _bucket("lp-chunks")
    s3.mkdir(bucket)
    data = real_clip.read_bytes()
    layout = {"chunk_0000/a.mp4": data, "chunk_0000/b.mp4": data, "chunk_0001/c.mp4": data,
              "chunk_0001/notes.txt": b"not a clip", "chunk_0002/d.mp4": data, "misc/e.mp4": data}
    for key, blob in layout.items():
        s3.pipe_file(f"{bucket}/drive/cam/{key}", blob)
    before = _bucket_keys(s3, bucket)
    cfg = _cfg([f"chunks+s3://{bucket}/drive/cam?start=0&end=2&per_chunk=1"], f"s3://{bucket}/runs")

    summary = pipeline.run(cfg, executor="sequential")

    rows = pd.DataFrame(summary.rows)
    assert list(rows["clip"]) == ["a", "c"] and (rows.status == "ok").all()
    assert list(rows.source) == [f"s3://{bucket}/drive/cam/chunk_0000/a.mp4", f"s3://{bucket}/drive/cam/chunk_0001/c.mp4"]
    _check_run(s3, "s3", bucket, "runs", summary.run_id, {"a": real_clip, "c": real_clip}, [], ["segment"])
    assert _bucket_keys(s3, bucket, exclude_prefix="runs") == before


def test_transient_outage_is_retried_with_backoff(outage_s3: Any, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Stop the S3 server, start a write and a read, restart the server within the retry window: both succeed."""
    import fsspec

    monkeypatch.setenv("LANEPIPE_STORAGE_RETRIES", "8")  # 0.5, 1, 2, 4, 8… s: a window of ~30 s
    fs = fsspec.filesystem("s3")
    bucket = _bucket("lp-retry")
    fs.mkdir(bucket)
    earlier, url = f"s3://{bucket}/earlier.bin", f"s3://{bucket}/runs/r1/manifest.json"
    storage.write_bytes_atomic(earlier, b"e" * 4096)
    payload = os.urandom(256 * 1024)
    outage_s = 2.5
    outcome: dict[str, Any] = {}

    def write_then_read() -> None:
        t0 = time.monotonic()
        try:
            storage.write_bytes_atomic(url, payload)
            outcome["read"] = storage.read_bytes(url)
        except BaseException as e:  # reported to the test thread below
            outcome["error"] = e
        outcome["elapsed"] = time.monotonic() - t0

    outage_s3.stop()
    worker = threading.Thread(target=write_then_read, daemon=True)
    with caplog.at_level(logging.WARNING, logger="lanepipe.io.storage"):
        worker.start()
        time.sleep(outage_s)
        outage_s3.start()
        worker.join(timeout=60)
    assert not worker.is_alive(), "the write did not finish within 60 s of the restart"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["read"] == payload and outcome["elapsed"] >= outage_s
    retries = [r.getMessage() for r in caplog.records if f"write {url} failed" in r.getMessage()]
    assert retries, [r.getMessage() for r in caplog.records]
    assert "EndpointConnectionError" in retries[0]
    delays = [float(m.split("retrying in ")[1].split(" s")[0]) for m in retries]
    assert delays == sorted(delays) and len(set(delays)) == len(delays)  # exponential back-off
    assert storage.read_bytes(earlier) == b"e" * 4096  # data written before the outage survived the restart


def test_permanent_errors_are_not_retried(object_stores: Any, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    s3 = object_stores.s3fs()
    bucket = _bucket("lp-perm")
    s3.mkdir(bucket)
    with caplog.at_level(logging.WARNING, logger="lanepipe.io.storage"):
        t0 = time.monotonic()
        with pytest.raises(FileNotFoundError):
            storage.read_bytes(f"s3://{bucket}/missing.json")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        storage.configure_from_env()  # drop the cached client that holds the right key
        with pytest.raises(PermissionError):
            storage.write_bytes_atomic(f"s3://{bucket}/x.json", b"{}")
        elapsed = time.monotonic() - t0
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    assert elapsed < 5


def test_is_transient_classifies_client_errors() -> None:
    import aiohttp
    from botocore.exceptions import ClientError, EndpointConnectionError
    from gcsfs.retry import HttpError

    def s3_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    def wrapped(e: BaseException) -> OSError:  # what s3fs raises: a translated OSError caused by the client error
        try:
            raise OSError(5, "remote I/O") from e
        except OSError as out:
            return out

    transient = [s3_error("SlowDown", 503), s3_error("InternalError", 500), s3_error("RequestTimeout", 400),
                 s3_error("TooManyRequests", 429), EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
                 HttpError({"code": 503, "message": "unavailable"}), HttpError({"code": 429, "message": "rate"}),
                 aiohttp.ServerDisconnectedError(), TimeoutError(), ConnectionResetError(),
                 wrapped(s3_error("ServiceUnavailable", 503))]
    permanent = [s3_error("AccessDenied", 403), s3_error("NoSuchBucket", 404), s3_error("InvalidBucketName", 400),
                 HttpError({"code": 404, "message": "not found"}), HttpError({"code": 403, "message": "denied"}),
                 FileNotFoundError("x"), PermissionError("x"), ValueError("x"), OSError(22, "invalid")]
    assert [storage.is_transient(e) for e in transient] == [True] * len(transient)
    assert [storage.is_transient(e) for e in permanent] == [False] * len(permanent)

    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise s3_error("SlowDown", 503)
        return "ok"

    assert storage.retry(flaky, attempts=4, base_delay=0.01) == "ok" and len(calls) == 3

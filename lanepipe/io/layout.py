"""The run layout (DESIGN.md §2) on any fsspec URL, the manifest and the results table.

```
<root>/<run_id>/
  manifest.json  results.parquet  report.html
  .scratch/                                   (temp files of writers at work; emptied on resume and at the end)
  segment/<clip>/{masks/00000.png…, all_masks.npz, overlay.mp4, meta.json}
  edit/<clip>/<slug>/{edited.mp4, first_frame.png, qa.json, lanes.json, meta.json}
  evaluate/<clip>/<slug>/{<predictor>.json, <predictor>.npz, <predictor>.meta.json,      (evaluate)
                          [<predictor>.]overlay.mp4, [<predictor>.]comparison.mp4, [<predictor>.]bev.png,
                          <predictor>.render.json}                                        (render)
  videopainter/{meta.csv, masks/<clip>/all_masks.npz, raw_videos/<clip>/<clip>.0.mp4}
```
``<slug>`` names an instruction (:meth:`RunLayout.slug`, e.g. ``double-yellow-solid``). The marker (``meta.json``,
``<predictor>.meta.json``, ``<predictor>.render.json``) is written last: its presence marks the item finished.
:class:`RunLayout` names every one of these files; no other module builds a run path by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from lanepipe.errors import InputError
from lanepipe.io import storage
from lanepipe.lanes.instructions import parse_instruction

MANIFEST = "manifest.json"
SCRATCH = ".scratch"
RESULTS = "results.parquet"
#: ``evaluate/<clip>/null-edit/``: the clip's re-encoded original and its null edit (the noise floor of its shifts,
#: ``evaluate.noise_floor``). No instruction's slug can take this name (``null`` is not in the grammar).
NULL_EDIT_SLUG = "null-edit"
_VERSIONED = ("lanepipe", "ray", "numpy", "av", "opencv-python-headless", "pyarrow", "fsspec", "pydantic",
              "torch", "sam2", "diffusers", "transformers")


@dataclass(frozen=True)
class SegmentPaths:
    dir: str
    masks_dir: str
    npz: str
    overlay: str
    meta: str
    vp_npz: str
    vp_video: str

    def mask_png(self, i: int) -> str:
        return storage.join(self.masks_dir, f"{i:05d}.png")


@dataclass(frozen=True)
class EditPaths:
    dir: str
    video: str
    first_frame: str
    qa: str
    lanes: str
    meta: str


@dataclass(frozen=True)
class EvaluatePaths:
    """Files of one (clip, instruction, predictor) under ``evaluate/<clip>/<slug>/``: the evaluate stage's
    ``evaluation`` document, ``arrays`` (trajectories) and ``meta`` marker; the render stage's videos, BEV plot
    and ``render_marker``. Render files of the run's first predictor are unprefixed, others ``<predictor>.``."""

    dir: str
    evaluation: str
    arrays: str
    meta: str
    overlay: str
    comparison: str
    bev: str
    render_marker: str


class RunLayout:
    """Every path of one run folder, and its whole-file reads/writes (manifest, results, markers)."""

    def __init__(self, root: str, run_id: str) -> None:
        self.root = root.rstrip("/") or "."
        self.run_id = run_id
        self.url = storage.join(self.root, run_id)

    @property
    def scratch(self) -> str:
        """The run's local scratch folder for temp files of writers (:func:`~lanepipe.io.storage.scratch_dir`):
        ``<run>/.scratch`` for a local run, else a per-run folder under the system temp folder. Emptied when the
        run resumes or finishes."""
        if not storage.is_remote(self.url):
            return storage.join(self.url, SCRATCH)
        key = hashlib.sha1(self.url.encode()).hexdigest()[:8]
        return str(Path(tempfile.gettempdir()) / "lanepipe-scratch" / f"{self.run_id}-{key}")

    def clean_scratch(self) -> bool:
        """Remove the scratch folder (temp files of writers that were killed); True if there was one. Call only
        when no writer of this run is active."""
        path = Path(self.scratch.removeprefix("file://"))
        if not path.exists():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    def stage_dir(self, stage: str) -> str:
        return storage.join(self.url, stage)

    def segment_paths(self, clip: str) -> SegmentPaths:
        d = storage.join(self.url, "segment", clip)
        vp = storage.join(self.url, "videopainter")
        return SegmentPaths(
            dir=d, masks_dir=storage.join(d, "masks"), npz=storage.join(d, "all_masks.npz"),
            overlay=storage.join(d, "overlay.mp4"), meta=storage.join(d, "meta.json"),
            vp_npz=storage.join(vp, "masks", clip, "all_masks.npz"),
            vp_video=storage.join(vp, "raw_videos", clip, f"{clip}.0.mp4"),
        )

    def edit_paths(self, clip: str, slug: str) -> EditPaths:
        d = storage.join(self.url, "edit", clip, slug)
        return EditPaths(dir=d, video=storage.join(d, "edited.mp4"), first_frame=storage.join(d, "first_frame.png"),
                         qa=storage.join(d, "qa.json"), lanes=storage.join(d, "lanes.json"),
                         meta=storage.join(d, "meta.json"))

    def edit_camera_paths(self, clip: str, slug: str, camera: str) -> EditPaths:
        """Files of another camera of ``clip``'s rig for the ``slug`` edit, under
        ``edit/<clip>/<slug>/cameras/<camera>/`` (``qa`` holds that camera's checks, ``checks.json``; ``meta`` the
        road-plane edit all cameras share, ``edit/<clip>/<slug>/road_edit.json``)."""
        base = storage.join(self.url, "edit", clip, slug)
        d = storage.join(base, "cameras", camera)
        return EditPaths(dir=d, video=storage.join(d, "edited.mp4"), first_frame=storage.join(d, "first_frame.png"),
                         qa=storage.join(d, "checks.json"), lanes=storage.join(d, "lanes.json"),
                         meta=storage.join(base, "road_edit.json"))

    @staticmethod
    def slug(instruction: str) -> str:
        """The folder name of an instruction (``"double yellow solid"`` → ``double-yellow-solid``)."""
        return parse_instruction(instruction).slug

    def evaluate_paths(self, clip: str, slug: str, predictor: str, *, primary: bool = True) -> EvaluatePaths:
        """Files of ``predictor`` on ``clip``'s ``slug`` edit; ``primary``: the run's first predictor (its render
        files carry no prefix)."""
        d = storage.join(self.url, "evaluate", clip, slug)
        prefix = "" if primary else f"{predictor}."
        return EvaluatePaths(dir=d, evaluation=storage.join(d, f"{predictor}.json"),
                             arrays=storage.join(d, f"{predictor}.npz"), meta=storage.join(d, f"{predictor}.meta.json"),
                             overlay=storage.join(d, f"{prefix}overlay.mp4"),
                             comparison=storage.join(d, f"{prefix}comparison.mp4"),
                             bev=storage.join(d, f"{prefix}bev.png"),
                             render_marker=storage.join(d, f"{predictor}.render.json"))

    @property
    def videopainter_meta(self) -> str:
        return storage.join(self.url, "videopainter", "meta.csv")

    @property
    def report_url(self) -> str:
        return storage.join(self.url, "report.html")

    @property
    def manifest_url(self) -> str:
        return storage.join(self.url, MANIFEST)

    @property
    def results_url(self) -> str:
        return storage.join(self.url, RESULTS)

    def exists(self) -> bool:
        return storage.exists(self.manifest_url)

    def finished(self, stage: str) -> dict[str, dict[str, Any]]:
        """Results rows of the finished items of ``stage`` (one listing), keyed ``clip[/instruction[/predictor]]``.

        Finished = its marker exists: ``segment/<clip>/meta.json``, ``edit/<clip>/<slug>/meta.json``,
        ``evaluate/<clip>/<slug>/<predictor>.meta.json``.
        """
        pattern = {"segment": "*/meta.json", "edit": "*/*/meta.json", "evaluate": "*/*/*.meta.json",
                   "render": "*/*/*.render.json"}[stage]
        fs, path = storage.filesystem(self.stage_dir(stage))
        try:
            metas = fs.glob(f"{path}/{pattern}")
        except FileNotFoundError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for m in sorted(metas):
            with fs.open(m, "rb") as f:
                meta = json.loads(f.read())
            key = "/".join(str(meta[k]) for k in ("clip", "instruction", "predictor") if meta.get(k))
            out[key] = meta
        return out

    def read_manifest(self) -> dict[str, Any]:
        if not self.exists():
            raise InputError(self.url, f"a run folder with {MANIFEST}", "no manifest (wrong run id or root?)")
        data: dict[str, Any] = json.loads(storage.read_text(self.manifest_url))
        return data

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        storage.write_text_atomic(self.manifest_url, json.dumps(manifest, indent=2, default=str))

    def write_results(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        df = pd.DataFrame(rows)
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        storage.write_bytes_atomic(self.results_url, buf.getvalue())
        return df

    def read_results(self) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(storage.read_bytes(self.results_url)))


#: The former name of :class:`RunLayout` (kept for callers outside the pipeline).
RunStore = RunLayout


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_sha() -> str | None:
    """The lanepipe checkout's commit, or None when installed without git."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_videopainter_meta(store: RunStore, rows: list[dict[str, Any]], caption: str) -> str:
    """Write ``videopainter/meta.csv`` for the clips whose segmentation succeeded.

    Columns ``path, mask_id, start_frame, end_frame, fps, caption`` (TencentARC/VideoPainter
    ``infer/edit_bench.py``): ``path`` is ``<clip>.0.mp4`` under ``raw_videos/<clip>/``; frame indices are
    of that raw video, which is the decoded (resampled) clip the masks are aligned with.
    """
    ok = [r for r in rows if r.get("status") == "ok" and r.get("stage") == "segment"]
    df = pd.DataFrame({
        "path": [f"{r['clip']}.0.mp4" for r in ok],
        "mask_id": [1] * len(ok),
        "start_frame": [0] * len(ok),
        "end_frame": [int(r["num_frames"]) for r in ok],
        "fps": [float(r["fps"]) for r in ok],
        "caption": [caption] * len(ok),
    })
    url = store.videopainter_meta
    storage.write_text_atomic(url, df.to_csv(index=False))
    return url

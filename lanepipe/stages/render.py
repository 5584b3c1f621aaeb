"""The render stage for one evaluated item: overlay video, side-by-side comparison video, BEV plot.

Writes into ``evaluate/<clip>/<slug>/``: ``overlay.mp4`` (the edited clip with both predictions, HUD, legend and
BEV inset), ``comparison.mp4`` (original + its prediction | edited + its prediction) and ``bev.png`` for the
first configured predictor; further predictors get the same files prefixed ``<predictor>.``. The marker
``<predictor>.render.json`` is written last. ``report.html`` is built once per run by the driver.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import cv2
import numpy as np

from lanepipe.config import Resources, RunConfig
from lanepipe.datasets.context import camera_from_dict
from lanepipe.engine.items import PredictionResult, RenderResult, StageItem
from lanepipe.errors import failures_recorded
from lanepipe.io import storage
from lanepipe.io.clip_cache import decode_cached
from lanepipe.io.layout import RunLayout
from lanepipe.io.video import encode
from lanepipe.viz.bev import bev_inset
from lanepipe.viz.overlay import comparison_video, overlay_video


def _fmt(v: float | None) -> str:
    return "n/a (no ego-motion)" if v is None else f"{v:.2f} m"


class RenderStage:
    """No model to load; ``process`` renders the videos of one evaluate row."""

    name = "render"

    def __init__(self, cfg: RunConfig, root: str, run_id: str, upstream_root: str, upstream_run_id: str) -> None:
        self.cfg = cfg
        self.store = RunLayout(root, run_id)
        # The evaluate outputs it renders: this run's when this run evaluates (``--stages evaluate,render
        # --from-run RUN`` reads RUN's edits but writes its evaluations here), else the upstream run's.
        self.evaluated = self.store if "evaluate" in cfg.stages else RunLayout(upstream_root, upstream_run_id)
        self.primary = cfg.evaluate.predictors[0]

    def resources(self) -> Resources:
        return self.cfg.render.resources

    def setup(self) -> None:
        """Nothing to load (drawing and encoding only)."""

    def _render(self, pred: PredictionResult, row: dict[str, Any]) -> None:
        name, slug = str(pred.predictor), str(row["slug"])
        src = self.evaluated.evaluate_paths(pred.clip, slug, name)
        out = self.store.evaluate_paths(pred.clip, slug, name, primary=name == self.primary)
        doc = json.loads(storage.read_text(src.evaluation))
        with np.load(io.BytesIO(storage.read_bytes(src.arrays))) as z:
            arrays = {k: z[k] for k in z.files}
        c = self.cfg.input
        clip = decode_cached(str(pred.source), name=pred.clip, target_fps=c.target_fps,
                      max_frames=c.max_frames, max_pixels=c.max_pixels, min_frames=c.min_frames)
        edited = decode_cached(str(doc["edited"]), target_fps=None, max_frames=clip.num_frames + 1)
        camera = camera_from_dict(doc["camera"])
        t_rel = clip.timestamps - float(doc["t0_s"])
        gt = arrays.get("ground_truth")
        m = doc.get("metrics") or {}
        hud = {"clip": clip.name, "camera": "front", "instruction": str(pred.instruction),
               "predictor": name,
               "minADE orig": _fmt((m.get("original") or {}).get("min_ade")),
               "minADE edit": _fmt((m.get("edited") or {}).get("min_ade")),
               "shift": f"{doc['shift']['ade']:.2f} m (lateral {doc['shift']['max_lateral_offset']:+.2f} m)"}
        t = time.perf_counter()
        written: dict[str, str] = {}
        if self.cfg.render.overlay:
            ov = overlay_video(edited.frames, camera, t_rel, {"original": arrays["original"],
                                                              "edited": arrays["edited"]},
                               gt=gt, history=arrays["history"], hud=hud, title="edited clip")
            written["overlay"] = out.overlay
            encode(ov, written["overlay"], clip.fps)
        if self.cfg.render.comparison:
            cmp_frames = comparison_video(clip.frames, arrays["original"], edited.frames, arrays["edited"], camera,
                                          t_rel, gt=gt, history=arrays["history"], hud=hud)
            written["comparison"] = out.comparison
            encode(cmp_frames, written["comparison"], clip.fps)
        bev = bev_inset(arrays["history"], gt, {"original": arrays["original"], "edited": arrays["edited"]})
        ok, png = cv2.imencode(".png", cv2.cvtColor(bev, cv2.COLOR_RGB2BGR))
        if ok:
            written["bev"] = out.bev
            storage.write_bytes_atomic(written["bev"], png.tobytes())
        row.update(render_s=time.perf_counter() - t, **written)
        storage.write_text_atomic(out.render_marker, json.dumps(row, default=str))

    def process(self, item: StageItem) -> list[StageItem]:
        """Pipeline entry: a prediction result → it passed through plus one render result. Never raises."""
        if not isinstance(item, PredictionResult):
            return [item]
        slug = item.slug or RunLayout.slug(str(item.instruction))  # older runs: no slug
        row: dict[str, Any] = {"run_id": self.store.run_id, "clip": item.clip, "source": item.source,
                               "stage": "render", "instruction": item.instruction, "slug": slug,
                               "predictor": item.predictor, "status": "ok", "error": None, "error_type": None,
                               "skipped": False}
        marker = self.store.evaluate_paths(item.clip, slug, str(item.predictor)).render_marker
        if storage.exists(marker):
            return [item, RenderResult.from_row(json.loads(storage.read_text(marker)) | {"skipped": True})]
        if not item.ok:
            return [item, RenderResult.from_row(row | {"status": "failed", "error_type": "UpstreamFailed",
                                                       "error": f"evaluate failed: {item.first_error_line}"})]
        with failures_recorded(row):
            self._render(item, row)
        return [item, RenderResult.from_row(row)]

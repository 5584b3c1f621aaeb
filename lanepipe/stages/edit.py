"""The edit stage for one clip: for each instruction, paint → verify → retry (QA loop) → write outputs.

Reads the clip's source and road masks from a finished segment stage (this run or ``--from-run``).
Outputs per (clip, instruction): ``edit/<clip>/<slug>/{edited.mp4, first_frame.png, qa.json, lanes.json,
meta.json}``; ``meta.json`` is written last and marks the item finished.

Painter by ``edit.backend``, verifier by ``verify.backend``, both built through :mod:`lanepipe.registry`; one QA
loop drives any pair (:func:`lanepipe.edit.base.run_qa`):

* ``procedural``: paint the clip → verify → adjust the paint knobs → repaint (``lane_detector`` inspects the whole
  edited clip; ``qwen_vl`` judges frame 0 of the original and the edited clip and its reasons steer the knobs);
* ``flux_cogvideox``: FLUX first frame → verify → revised caption (``qwen_vl``) and next seed → repeat until PASS
  or ``edit.qa.max_iterations``, then propagate the last first frame once (``lane_detector`` inspects the single
  generated frame with its road mask).
"""

from __future__ import annotations

import io
import json
import time
import traceback
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe import registry
from lanepipe.config import Resources, RunConfig
from lanepipe.datasets.context import load_context
from lanepipe.edit.base import Painter, QAOutcome, run_qa
from lanepipe.edit.config import QAConfig
from lanepipe.edit.generative.painter import next_prompt
from lanepipe.engine.items import EditResult, SegmentResult, StageItem
from lanepipe.engine.stage import cluster_has_gpus
from lanepipe.errors import InputError, LanepipeError
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.io import storage
from lanepipe.io.clip_cache import decode_cached
from lanepipe.io.layout import RunLayout
from lanepipe.io.video import encode
from lanepipe.lanes.instructions import LaneSpec, parse_instruction
from lanepipe.metrics import edit_metrics, original_flows
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import Verifier
from lanepipe.verify.config import QwenJudgeConfig

__all__ = ["EditStage", "QAOutcome", "judge_config", "lanes_to_json", "load_masks", "next_prompt", "qa_edit",
           "qa_generative"]


def load_masks(url: str, clip: Clip) -> RoadMasks:
    """Read ``all_masks.npz`` (key ``arr_0``, ``(T, H, W)`` ids, road = 1; ``hood_top`` when the segment stage
    found the ego vehicle's hood) and check it matches the clip."""
    try:
        with np.load(io.BytesIO(storage.read_bytes(url))) as z:
            ids = z["arr_0"]
            hood = np.asarray(z["hood_top"], dtype=np.int32) if "hood_top" in z.files else None
    except (OSError, KeyError, ValueError) as e:
        raise InputError(url, "an all_masks.npz with key arr_0", f"an unreadable file ({e})") from None
    if hood is not None and ids.ndim == 3 and hood.shape != (ids.shape[2],):
        raise InputError(url, f"hood_top of shape ({ids.shape[2]},), one row per column", f"{hood.shape}")
    masks = RoadMasks(masks=ids == 1, backend="file", hood_top=hood)
    masks.check_matches(clip)
    if not masks.masks.any():
        raise InputError(url, "a road mask with road pixels to paint on", "an all-zero mask in every frame",
                         "the segment stage found no road in this clip")
    return masks


def lanes_to_json(lanes: list[list[Any]], spec: LaneSpec, fps: float) -> dict[str, Any]:
    """Per-frame painted lines (TuSimple-style polylines in image pixels) with their attributes."""
    frames = []
    for t, lines in enumerate(lanes):
        frames.append({"frame": t, "time_s": t / fps, "lines": [
            {"id": ln.id, "side": ln.side, "count": ln.count, "color": ln.color, "pattern": ln.pattern,
             "points": np.round(np.asarray(ln.points, dtype=float), 2).tolist()} for ln in lines]})
    return {"instruction": spec.to_text(), "caption": spec.caption(), "frames": frames}


def qa_edit(painter: Painter, verifier: Verifier, clip: Clip, masks: RoadMasks, spec: LaneSpec,
            max_iterations: int = 10, enabled: bool = True) -> QAOutcome:
    """Paint → verify → adjust → retry (:func:`lanepipe.edit.base.run_qa`) with the given loop settings."""
    return run_qa(painter, verifier, clip, masks, spec, QAConfig(max_iterations=max_iterations, enabled=enabled))


def qa_generative(painter: Painter, judge: Verifier, clip: Clip, masks: RoadMasks, spec: LaneSpec,
                  max_iterations: int = 10, enabled: bool = True, vary_seed: bool = True) -> QAOutcome:
    """FLUX first frame → judge → revised caption / next seed → repeat, then propagate once
    (:class:`lanepipe.edit.generative.GenerativeJob` driven by :func:`lanepipe.edit.base.run_qa`)."""
    return run_qa(painter, judge, clip, masks, spec,
                  QAConfig(max_iterations=max_iterations, enabled=enabled, vary_seed=vary_seed))


def judge_config(cfg: RunConfig) -> QwenJudgeConfig:
    """``verify.qwen_vl`` as it runs: ``edit.preset=tiny-random`` already switched it to its tiny-random preset in
    the config (:func:`lanepipe.config.tiny_preset_section`), so manifest.json records this judge."""
    return cfg.verify.qwen_vl


class EditStage:
    """Loads the painter and verifier once (:meth:`setup`); ``__call__`` edits one clip for every instruction."""

    name = "edit"

    def __init__(self, cfg: RunConfig, root: str, run_id: str, upstream_root: str, upstream_run_id: str) -> None:
        self.cfg = cfg
        self.store = RunLayout(root, run_id)
        self.upstream = RunLayout(upstream_root, upstream_run_id)
        self.specs = [parse_instruction(t) for t in cfg.edit.instructions]
        self._ready = False

    def resources(self) -> Resources:
        """The painter's default resources (:mod:`lanepipe.registry`) under ``edit.resources``; a GPU judge
        beside a CPU painter brings its GPU (both live in the same worker)."""
        painter = registry.default_resources("painter", self.cfg.edit.backend)
        judge = registry.default_resources("verifier", self.cfg.verify.backend)
        merged = painter if painter.num_gpus >= judge.num_gpus else judge
        res: Resources = merged.under(self.cfg.edit.resources, cluster_has_gpus())
        return res

    def setup(self) -> None:
        """Build the painter and the verifier through the registry (models load here, once per worker)."""
        if self._ready:
            return
        # the painter first: the generative one sets the CUDA allocator before a judge on CUDA starts CUDA
        self.painter: Painter = registry.create_from("painter", self.cfg.edit)
        self.verifier: Verifier = registry.create_from("verifier", self.cfg.verify)
        self._ready = True

    def _load_clip(self, seg: SegmentResult) -> Clip:
        """Decode the clip; attach the calibration and speed its context supplies (sample, PhysicalAI-AV)."""
        c = self.cfg.input
        clip = decode_cached(str(seg.source), name=seg.clip, target_fps=c.target_fps,
                      max_frames=c.max_frames, max_pixels=c.max_pixels, min_frames=c.min_frames)
        ctx = load_context(clip.source, clip.width, clip.height)
        if ctx.kind == "fallback":
            return clip
        meta = dict(clip.meta)
        if isinstance(ctx.camera, PinholeCamera):
            meta["camera"] = ctx.camera
        if ctx.ego is not None:
            times = ctx.time_offset + clip.timestamps
            meta["speed_mps"] = float(np.median([ctx.ego.speed(float(t)) for t in times if ctx.ego.covers(t)]
                                                or [0.0])) or None
        return replace(clip, meta=meta)

    def edit_one(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, row: dict[str, Any],
                 flows: list[npt.NDArray[np.float32]] | None = None) -> None:
        """QA loop for one instruction; fills ``row`` and writes the outputs (meta.json last).

        The image metrics (PSNR/SSIM in and out of the mask, warping errors; ``flows``: the original's, shared by
        the instructions of a clip) are measured on the edited frames in memory, before the lossy encode."""
        qa_cfg = self.cfg.edit.qa
        t0 = time.perf_counter()
        outcome = run_qa(self.painter, self.verifier, clip, masks, spec, qa_cfg)
        result, iterations = outcome.result, outcome.iterations
        paint_s = time.perf_counter() - t0
        if result.frames.shape == clip.frames.shape:
            row.update(edit_metrics(clip.frames, result.frames, masks.masks, flows))
        d = self.store.edit_paths(clip.name, spec.slug)
        encode(result.frames, d.video, clip.fps)
        ok, png = cv2.imencode(".png", cv2.cvtColor(result.frames[0], cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"PNG encoding of the first frame of {clip.name} failed")
        storage.write_bytes_atomic(d.first_frame, png.tobytes())
        final = iterations[-1]["verdict"]
        qa = {"instruction": spec.to_text(), "caption": spec.caption(), "backend": self.cfg.edit.backend,
              "verifier": self.cfg.verify.backend, "max_iterations": qa_cfg.max_iterations, "final_verdict": final,
              "iterations": iterations}
        qa.update(outcome.qa_fields)
        storage.write_text_atomic(d.qa, json.dumps(qa, indent=2, default=str))
        storage.write_text_atomic(d.lanes, json.dumps(lanes_to_json(result.lanes, spec, clip.fps)))
        row.update(qa_verdict=final, qa_iterations=len(iterations), edit_s=paint_s, edited=d.video,
                   masks_npz=self.upstream.segment_paths(clip.name).npz,
                   num_frames=clip.num_frames, fps=clip.fps, width=clip.width, height=clip.height,
                   geometry=json.dumps(result.diagnostics, default=str))
        storage.write_text_atomic(d.meta, json.dumps(row, indent=2, default=str))

    def __call__(self, seg: SegmentResult) -> list[EditResult]:
        """Edit rows (one per instruction) for one segmented clip. Never raises."""
        self.setup()
        rows: list[dict[str, Any]] = []
        base = {"run_id": self.store.run_id, "clip": seg.clip, "source": seg.source,
                "stage": "edit", "backend": self.cfg.edit.backend, "status": "ok", "error": None,
                "error_type": None, "skipped": False}
        todo: list[tuple[LaneSpec, dict[str, Any]]] = []
        for spec in self.specs:
            row = base | {"instruction": spec.to_text(), "caption": spec.caption(), "slug": spec.slug}
            meta_url = self.store.edit_paths(seg.clip, spec.slug).meta
            if storage.exists(meta_url):
                rows.append(json.loads(storage.read_text(meta_url)) | {"skipped": True})
            elif not seg.ok:
                rows.append(row | {"status": "failed", "error_type": "UpstreamFailed",
                                   "error": f"segment stage failed: {seg.first_error_line}"})
            else:
                todo.append((spec, row))
                rows.append(row)
        if not todo:
            return [EditResult.from_row(r) for r in rows]
        try:
            clip = self._load_clip(seg)
            masks = load_masks(self.upstream.segment_paths(clip.name).npz, clip)
        except Exception as e:
            msg = str(e) if isinstance(e, LanepipeError) else f"{type(e).__name__}: {e}"
            for _, row in todo:
                row.update(status="failed", error=msg, error_type=type(e).__name__)
            return [EditResult.from_row(r) for r in rows]
        flows = original_flows(clip.frames) if clip.num_frames > 1 else None
        for spec, row in todo:
            try:
                self.edit_one(clip, masks, spec, row, flows)
            except LanepipeError as e:
                row.update(status="failed", error=str(e), error_type=type(e).__name__)
            except Exception as e:  # one bad instruction never stops the others
                row.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}",
                           error_type=type(e).__name__)
        return [EditResult.from_row(r) for r in rows]

    def process(self, item: StageItem) -> list[StageItem]:
        """Pipeline entry: a segment result → it passed through plus one edit result per instruction."""
        if not isinstance(item, SegmentResult):
            return [item]
        return [item, *self(item)]

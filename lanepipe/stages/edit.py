"""The edit stage for one clip: for each instruction, paint → verify → retry (QA loop) → write outputs.

Reads the clip's source and road masks from a finished segment stage (this run or ``--from-run``).
Outputs per (clip, instruction): ``edit/<clip>/<slug>/{edited.mp4, first_frame.png, qa.json, lanes.json,
meta.json}``; ``meta.json`` is written last and marks the item finished.

With ``edit.cameras`` naming more cameras of the clip's rig (sample ``rig.json``, PhysicalAI-AV), the front edit is
moved into the road plane once and painted into each of them (:meth:`EditStage.edit_rig`, :mod:`lanepipe.edit.rig`):
``edit/<clip>/<slug>/road_edit.json`` and ``cameras/<camera>/{edited.mp4, lanes.json, checks.json}``.

Painter by ``edit.backend``, verifier by ``verify.backend``, both built through :mod:`lanepipe.registry`; one QA
loop drives any pair (:func:`lanepipe.edit.base.run_qa`):

* ``procedural``: paint the clip → verify → adjust the paint knobs → repaint (``lane_detector`` inspects the whole
  edited clip; ``qwen_vl`` judges frame 0 of the original and the edited clip and its reasons steer the knobs);
* ``flux_cogvideox``: FLUX first frame → verify → revised caption (``qwen_vl``) and next seed → repeat until PASS
  or ``edit.qa.max_iterations``, then propagate the last first frame once (``lane_detector`` inspects the single
  generated frame with its road mask).

CPU work off the device's critical path (issue 15, lever 5). Design: **several clips in flight in one edit actor,
one at a time on the device.** The runner gives the actor ``resources.in_flight`` clips at once (2 by default for
``flux_cogvideox``; Ray 2.60 runs that many calls of a stateful actor in threads: ``max_concurrent_calls_per_actor``
with ``enable_true_multi_threading``, :func:`lanepipe.actors.runner.pool_strategy`). Each clip decodes, loads its
masks and computes its optical flow outside the device turn (:class:`lanepipe.monitoring.DeviceTurn`); it holds
the turn for its QA loop (FLUX, judge, CogVideoX with the VAE), and the painter hands the turn on as soon as its
last model call is done (:func:`lanepipe.monitoring.release_device`), so the clip-size compositing, the image
metrics, the encode and the writes run while the next clip denoises. Chosen over moving decode and encode into
CPU actor pools because the frames would then cross the object store twice per clip (a 49-frame 1080p clip is
~300 MB as uint8) and the atomic-write / resume rules would be split over two stages; here each clip's outputs are
still written by the call that made them (temp + rename, ``meta.json`` last), a failing encode fails that clip's
row only, and a call returns only when its writes are done, so nothing is pending when the actor stops. Models
stay resident once per actor (the threads share them; the turn keeps their calls apart).

Each row records its clip's work as spans (:func:`lanepipe.monitoring.span`): ``spans`` (JSON: ``kind``
device / cpu / wait / paint, ``name``, wall-clock ``t0``, ``t1``; the first instruction's row also carries the
clip's decode) and the sums ``device_s``, ``cpu_s``, ``device_wait_s`` (seconds waiting for the turn).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe import registry
from lanepipe.config import Resources, RunConfig
from lanepipe.datasets.context import load_context
from lanepipe.datasets.rig import ClipRig, load_rig
from lanepipe.edit.base import Painter, QAAttempts, QAOutcome, finish_attempts, run_attempts, run_qa
from lanepipe.edit.config import QAConfig
from lanepipe.edit.generative.painter import next_prompt
from lanepipe.edit.rig import RoadEdit, measure_paint, paint_camera, recover_lines, road_plane_check
from lanepipe.engine.items import EditResult, SegmentResult, StageItem
from lanepipe.engine.stage import cluster_has_gpus, require_gpus
from lanepipe.errors import ConfigError, InputError, LanepipeError, failures_recorded
from lanepipe.geometry.camera import PinholeCamera
from lanepipe.geometry.ftheta import FThetaCamera
from lanepipe.geometry.rig import pixel_ground
from lanepipe.io import storage
from lanepipe.io.clip_cache import decode_cached
from lanepipe.io.layout import RunLayout
from lanepipe.io.video import encode
from lanepipe.lanes.instructions import LaneSpec, parse_instruction
from lanepipe.metrics import edit_metrics, original_flows
from lanepipe.monitoring import DeviceTurn, collect_spans, span, spans_of, union_s
from lanepipe.segment.base import Segmenter
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import LaneInspector, LaneReport, Verifier
from lanepipe.verify.config import QwenJudgeConfig

__all__ = ["EditStage", "NullEdit", "QAOutcome", "judge_config", "lanes_to_json", "load_masks", "next_prompt",
           "null_edit_specs", "qa_edit", "qa_generative", "span_columns"]


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


def span_columns(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """Row columns of one item's spans: ``spans`` (JSON list), ``worker_pid`` (the actor's process: spans of one
    actor share a device) and the seconds ``device_s``, ``cpu_s`` (unions of the device / CPU spans) and
    ``device_wait_s`` (waiting for the device turn)."""
    return {"spans": json.dumps(spans), "worker_pid": os.getpid(),
            "device_s": round(union_s(spans_of(spans, "device")), 6),
            "cpu_s": round(union_s(spans_of(spans, "cpu")), 6),
            "device_wait_s": round(union_s(spans_of(spans, "wait")), 6)}


def judge_config(cfg: RunConfig) -> QwenJudgeConfig:
    """``verify.qwen_vl`` as it runs: ``edit.preset=tiny-random`` already switched it to its tiny-random preset in
    the config (:func:`lanepipe.config.tiny_preset_section`), so manifest.json records this judge."""
    return cfg.verify.qwen_vl


def full_size_gpu_models(cfg: RunConfig) -> list[str]:
    """The edit stage's GPU models at full size (any preset but tiny-random) that would run on a GPU (a device
    not set to ``cpu``), as config keys: :func:`~lanepipe.engine.stage.require_gpus` refuses them without GPUs."""
    out: list[str] = []
    gen = cfg.edit.generative
    if (cfg.edit.backend == "flux_cogvideox" and gen.preset != "tiny-random"
            and "cpu" not in (gen.flux_device, gen.video_device)):
        out.append(f"edit.backend=flux_cogvideox (edit.generative.preset={gen.preset})")
    judge = cfg.verify.qwen_vl
    if cfg.edit.qa.enabled and cfg.verify.backend == "qwen_vl" and judge.preset != "tiny-random" \
            and judge.device != "cpu":
        out.append(f"verify.backend=qwen_vl (verify.qwen_vl.preset={judge.preset})")
    return out


def null_edit_specs(report: LaneReport) -> list[LaneSpec]:
    """Instructions that repaint what ``report`` saw: one per boundary with a marking (count > 0, colour and
    pattern known), or one ``@both`` when the two boundaries look alike; none for unmarked boundaries (a null
    edit leaves them as they are)."""
    specs: list[LaneSpec] = []
    for side in ("left", "right"):
        b = report.boundary(side)
        if b.count > 0 and b.color is not None and b.pattern is not None:
            specs.append(LaneSpec(count=b.count, color=b.color, pattern=b.pattern, side=side))
    if len(specs) == 2 and replace(specs[0], side="both") == replace(specs[1], side="both"):
        return [replace(specs[0], side="both")]
    return specs


@dataclass(frozen=True)
class NullEdit:
    """A clip repainted with its own markings (:meth:`EditStage.null_edit`).

    Attributes:
        frames: ``(T, H, W, 3) uint8`` the repainted clip (before encoding).
        instructions: what was painted, in order (empty: nothing was).
        verdicts: the QA verdict of each.
        seen: the inspector's report of the original (JSON-ready).
    """

    frames: npt.NDArray[np.uint8]
    instructions: list[str]
    verdicts: list[str]
    seen: dict[str, Any]


class EditStage:
    """Loads the painter and verifier once (:meth:`setup`); ``__call__`` edits one clip for every instruction."""

    name = "edit"

    def __init__(self, cfg: RunConfig, root: str, run_id: str, upstream_root: str, upstream_run_id: str) -> None:
        self.cfg = cfg
        self.store = RunLayout(root, run_id)
        self.upstream = RunLayout(upstream_root, upstream_run_id)
        self.specs = [parse_instruction(t) for t in cfg.edit.instructions]
        self._ready = False
        self._segmenter: Segmenter | None = None
        self._rig_cache: dict[tuple[str, str], tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]] = {}
        self._turn = DeviceTurn()  # clips in flight in this actor take turns on the device
        self._setup_lock = threading.Lock()

    def resources(self) -> Resources:
        """The painter's default resources (:mod:`lanepipe.registry`) under ``edit.resources``; a GPU judge
        beside a CPU painter brings its GPU (both live in the same worker)."""
        painter = registry.default_resources("painter", self.cfg.edit.backend)
        judge = registry.default_resources("verifier", self.cfg.verify.backend)
        merged = painter if painter.num_gpus >= judge.num_gpus else judge
        require_gpus(full_size_gpu_models(self.cfg), self.cfg.edit.resources)
        res: Resources = merged.under(self.cfg.edit.resources, cluster_has_gpus())
        if self.cfg.edit.backend == "flux_cogvideox" and "in_flight" not in self.cfg.edit.resources.model_fields_set:
            res = res.model_copy(update={"in_flight": 2})  # decode/encode of one clip beside another's denoising
        return res

    def setup(self) -> None:
        """Build the painter and the verifier through the registry (models load here, once per worker)."""
        with self._setup_lock:
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
        return self.with_context(clip)

    def with_context(self, clip: Clip) -> Clip:
        """``clip`` with the calibration (a pinhole, or PhysicalAI-AV's f-theta: the procedural painter works through
        it) and speed its context supplies (sample, PhysicalAI-AV) in its meta."""
        ctx = load_context(clip.source, clip.width, clip.height)
        if ctx.kind == "fallback":
            return clip
        meta = dict(clip.meta)
        if isinstance(ctx.camera, PinholeCamera | FThetaCamera):
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
        t0 = time.perf_counter()
        with self.model_turn(clip, masks):
            outcome = run_qa(self.painter, self.verifier, clip, masks, spec, self.cfg.edit.qa)
        self.write_outcome(clip, masks, spec, row, outcome, time.perf_counter() - t0, flows)

    @contextlib.contextmanager
    def model_turn(self, clip: Clip, masks: RoadMasks) -> Iterator[None]:
        """The clip's inputs at model size (the generative painter's resized frames and masks: CPU work done before
        the turn, beside another clip's model calls), then the device turn around the block (the painter may end it
        early, after its last model call, before compositing)."""
        prepare = getattr(self.painter, "model_inputs", None)
        if callable(prepare):
            prepare(clip, masks)
        with self._turn.hold(), span("paint", "qa_loop"):
            yield

    def write_outcome(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, row: dict[str, Any], outcome: QAOutcome,
                      paint_s: float, flows: list[npt.NDArray[np.float32]] | None = None) -> None:
        """Write one instruction's outputs from its QA ``outcome`` (``paint_s``: its seconds) and fill ``row``:
        image metrics, ``edited.mp4``, ``first_frame.png``, ``qa.json``, ``lanes.json``, the rig cameras, then
        ``meta.json`` last."""
        qa_cfg = self.cfg.edit.qa
        result, iterations = outcome.result, outcome.iterations
        if result.frames.shape == clip.frames.shape:
            with span("cpu", "metrics"):
                row.update(edit_metrics(clip.frames, result.frames, masks.masks, flows))
        d = self.store.edit_paths(clip.name, spec.slug)
        with span("cpu", "encode"):
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
        if self.cfg.edit.cameras not in ("front", ["front"]):
            with span("cpu", "rig"):
                row.update(self.edit_rig(clip, masks.masks, result, spec))
        storage.write_text_atomic(d.meta, json.dumps(row, indent=2, default=str))

    # ------------------------------------------------------------------------------------------ rig
    def edit_rig(self, clip: Clip, front_masks: npt.NDArray[np.bool_], result: Any, spec: LaneSpec) -> dict[str, Any]:
        """Paint the front edit into the other cameras ``edit.cameras`` names (:mod:`lanepipe.edit.rig`).

        The edit, as the procedural painter made it in the front camera, is moved into the rig frame once
        (``road_edit.json``) and painted into each camera through its calibration, inside that camera's road mask
        (the configured segmenter's) and outside the ego body. Each camera gets ``edited.mp4``, ``lanes.json`` and
        ``checks.json``: the verifier's verdict where it reads the camera (front-facing ones) and always the
        road-plane check (paint read back onto the ground vs the edited boundary). Returns the row fields
        ``edited_cameras`` (JSON list, front first), ``camera_videos`` and ``camera_checks`` (JSON objects).

        Raises:
            InputError: the clip has no rig but other cameras are named, or the painter gave no road geometry.
        """
        wanted = self.cfg.edit.cameras
        rig = load_rig(str(clip.source))
        if rig is None:
            if wanted == "all":
                return {"edited_cameras": json.dumps(["front"]), "camera_videos": json.dumps({}),
                        "camera_checks": json.dumps({}), "rig_note": "no camera rig known for this clip: front only"}
            raise InputError(clip.source, f"a clip with a camera rig (sample rig.json, PhysicalAI-AV) for "
                             f"edit.cameras={wanted}", "a single-camera clip", "use edit.cameras=front")
        try:
            names = rig.select(wanted)
        except ConfigError as e:
            raise InputError(clip.source, "camera names of its rig in edit.cameras", str(e)) from None
        if result.road is None:
            raise InputError(clip.source, "a painter that reports its edit in the road plane (procedural)",
                             f"none from {self.cfg.edit.backend}")
        pcfg = self.cfg.edit.procedural
        edit = RoadEdit.from_front(result.road, spec, pcfg.sizes, rig.front_offset,
                                   erase_half_width_m=pcfg.erase_half_width_m,
                                   paint_ratio=measure_paint(clip.frames, result.frames, front_masks, result.lanes,
                                                             spec))
        first = self.store.edit_camera_paths(clip.name, spec.slug, rig.front)
        storage.write_text_atomic(first.meta, json.dumps(edit.to_dict()))
        videos: dict[str, str] = {}
        checks: dict[str, Any] = {}
        for name in names[1:]:
            frames, masks = self._rig_view(clip, rig, name)
            cam = rig.cameras[name]
            h = frames.shape[1]
            ground = pixel_ground(cam.rescaled(frames.shape[2], h), pcfg.max_range_m, rig.body)
            out = paint_camera(frames, masks, cam, edit, rig.body, max_range_m=pcfg.max_range_m,
                               blur_px=pcfg.blur_px * h / 720.0, texture_gain=pcfg.texture_gain, seed=pcfg.seed,
                               ground=ground)
            read = recover_lines(out.frames, masks, cam, edit, rig.body, x_bins=np.arange(-10.0, 60.0, 1.0),
                                 ground=ground)
            check = road_plane_check(read, edit)
            doc: dict[str, Any] = {"camera": name, "instruction": spec.to_text(), "road_plane": check,
                                   "painter": out.diagnostics, "verifier": None}
            verdict = check["verdict"]
            if cam.front_facing:
                v = self.verifier.check(frames, out.frames, masks, spec)
                doc["verifier"] = {"name": v.verifier, "verdict": "PASS" if v.passed else "FAIL",
                                   "reasons": list(v.reasons)}
                verdict = doc["verifier"]["verdict"]
            p = self.store.edit_camera_paths(clip.name, spec.slug, name)
            encode(out.frames, p.video, clip.fps)
            storage.write_text_atomic(p.lanes, json.dumps(lanes_to_json(out.lanes, spec, clip.fps) | {"camera": name}))
            storage.write_text_atomic(p.qa, json.dumps(doc, indent=2, default=str))
            videos[name] = p.video
            checks[name] = verdict
        return {"edited_cameras": json.dumps(names), "camera_videos": json.dumps(videos),
                "camera_checks": json.dumps(checks), "road_edit": first.meta}

    def _rig_view(self, clip: Clip, rig: ClipRig, name: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
        """Frames of camera ``name`` at the clip's instants (decoded like the clip) and its road masks (the
        configured segmenter's), cached for the clip's other instructions."""
        key = (clip.name, name)
        if key in self._rig_cache:
            return self._rig_cache[key]
        c = self.cfg.input
        view = decode_cached(rig.videos[name], name=f"{clip.name}.{name}", target_fps=c.target_fps,
                             max_frames=c.max_frames, max_pixels=c.max_pixels, min_frames=c.min_frames)
        if view.num_frames < clip.num_frames:
            raise InputError(rig.videos[name], f"at least {clip.num_frames} frames (as the front camera's clip)",
                             f"{view.num_frames} frames")
        view = replace(view, frames=view.frames[: clip.num_frames], timestamps=view.timestamps[: clip.num_frames],
                       source_indices=view.source_indices[: clip.num_frames])
        if self._segmenter is None:
            self._segmenter = registry.create_from("segmenter", self.cfg.segment)
        masks = self._segmenter.segment(view).masks
        if any(k[0] != clip.name for k in self._rig_cache):
            self._rig_cache.clear()  # one clip at a time
        self._rig_cache[key] = (view.frames, masks)
        return view.frames, masks

    def null_edit(self, clip: Clip, masks: RoadMasks) -> NullEdit:
        """Repaint the markings the clip already has (the ``repaint`` null edit of ``evaluate.noise_floor``).

        The lane inspector reads the original (the verifier when it is one, else ``lane_detector``), each boundary
        it sees becomes an instruction (:func:`null_edit_specs`), and the painter paints them one after the other
        through the QA loop, as the stage paints any instruction. No boundary seen: the frames are returned as
        they are. Encoding is the caller's.
        """
        self.setup()
        inspector = self.verifier if isinstance(self.verifier, LaneInspector) else \
            registry.create("verifier", "lane_detector", self.cfg.verify.lane_detector)
        report = inspector.inspect(clip.frames, masks.masks)
        specs = null_edit_specs(report)
        frames = clip.frames
        verdicts: list[str] = []
        for spec in specs:
            out = run_qa(self.painter, self.verifier, replace(clip, frames=frames), masks, spec, self.cfg.edit.qa)
            frames = np.asarray(out.result.frames, dtype=np.uint8)
            verdicts.append(out.verdict)
        return NullEdit(frames=frames, instructions=[s.to_text() for s in specs], verdicts=verdicts,
                        seen=report.to_dict())

    def __call__(self, seg: SegmentResult) -> list[EditResult]:
        """Edit rows (one per instruction) for one segmented clip. Never raises."""
        self.setup()
        rows, todo = self.plan(seg)
        if not todo:
            return [EditResult.from_row(r) for r in rows]
        with collect_spans() as clip_spans:
            try:
                with span("cpu", "decode"):
                    clip, masks = self.load_inputs(seg)
            except Exception as e:
                msg = str(e) if isinstance(e, LanepipeError) else f"{type(e).__name__}: {e}"
                for _, row in todo:
                    row.update(status="failed", error=msg, error_type=type(e).__name__)
                return [EditResult.from_row(r) for r in rows]
            with span("cpu", "flows"):
                flows = original_flows(clip.frames) if clip.num_frames > 1 else None
        if len(todo) > 1 and getattr(self.painter, "switches_phases", False):
            self.edit_grouped(clip, masks, todo, flows, clip_spans)
            return [EditResult.from_row(r) for r in rows]
        for k, (spec, row) in enumerate(todo):
            with collect_spans() as spans, failures_recorded(row):
                self.edit_one(clip, masks, spec, row, flows)
            row.update(span_columns([*clip_spans, *spans] if k == 0 else spans))
        return [EditResult.from_row(r) for r in rows]

    def edit_grouped(self, clip: Clip, masks: RoadMasks, todo: list[tuple[LaneSpec, dict[str, Any]]],
                     flows: list[npt.NDArray[np.float32]] | None, clip_spans: list[dict[str, Any]]) -> None:
        """The clip's instructions phase by phase, for a painter that moves weights between host and GPU at each
        change of phase (``switches_phases``): every instruction's QA attempts (first frames and their checks),
        then every final edit (propagation) and its outputs. Same outputs as :meth:`edit_one` per instruction;
        a failure in either phase fails that instruction only."""
        tried: list[tuple[QAAttempts | None, float, list[dict[str, Any]]]] = []
        for spec, row in todo:
            attempts = None
            t0 = time.perf_counter()
            with collect_spans() as spans, failures_recorded(row), self.model_turn(clip, masks):
                attempts = run_attempts(self.painter, self.verifier, clip, masks, spec, self.cfg.edit.qa)
            tried.append((attempts, time.perf_counter() - t0, list(spans)))
        for k, ((spec, row), (attempts, first_s, first_spans)) in enumerate(zip(todo, tried, strict=True)):
            with collect_spans() as spans:
                if attempts is not None:
                    with failures_recorded(row):
                        t0 = time.perf_counter()
                        with self.model_turn(clip, masks):
                            outcome = finish_attempts(attempts, self.verifier.name)
                        self.write_outcome(clip, masks, spec, row, outcome, first_s + time.perf_counter() - t0,
                                           flows)
            row.update(span_columns([*clip_spans, *first_spans, *spans] if k == 0 else [*first_spans, *spans]))

    def load_inputs(self, seg: SegmentResult) -> tuple[Clip, RoadMasks]:
        """The decoded clip (with its context) and its road masks from the segment stage."""
        clip = self._load_clip(seg)
        return clip, load_masks(self.upstream.segment_paths(clip.name).npz, clip)

    def plan(self, seg: SegmentResult) -> tuple[list[dict[str, Any]], list[tuple[LaneSpec, dict[str, Any]]]]:
        """The clip's edit rows, one per instruction in order (finished ones read back as skipped, all failed when
        the segment stage failed), and the ``(instruction, row)`` pairs still to do (their rows are in the list)."""
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
        return rows, todo

    def process(self, item: StageItem) -> list[StageItem]:
        """Pipeline entry: a segment result → it passed through plus one edit result per instruction."""
        if not isinstance(item, SegmentResult):
            return [item]
        return [item, *self(item)]

"""The evaluate stage for one edited item: predict on the original and the edited clip, compare.

Input rows are edit rows (this run or ``--from-run``). For each configured predictor the stage builds the same
predictor input twice — same ego history, same other cameras, only the edited cameras' frames differ (the front,
and every other camera the edit stage painted with ``edit.cameras``: ``camera_videos`` of the edit row) — runs the
predictor, and writes ``evaluate/<clip>/<slug>/{<predictor>.json, <predictor>.npz}``. Ground-truth metrics
(minADE/minFDE) are computed where the clip has ego-motion and are absent (None) otherwise; the shift between
the two predictions is always computed.

The baseline is the original as the edited clip reaches the predictor: decoded and encoded by the same encoder
(``evaluate.baseline=reencoded``, written once per clip to ``evaluate/<clip>/null-edit/original.mp4``). With
``evaluate.noise_floor.enabled`` every (clip, predictor) also gets a noise floor: the shift a *null edit* causes
(the clip re-encoded, or its own markings repainted; :class:`lanepipe.config.NoiseFloorConfig`), measured once and
kept in ``evaluate/<clip>/null-edit/{edited.mp4, <predictor>.json}``; each row carries it as ``floor_ade_m``. The
run then tests each preset's shifts against the floors over clips (:func:`lanepipe.stats.shift_significance`).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from lanepipe import registry
from lanepipe.config import Resources, RunConfig
from lanepipe.datasets.context import ClipContext, load_context
from lanepipe.datasets.trajectory import ego_state_at, future_at
from lanepipe.engine.items import EditResult, PredictionResult, StageItem
from lanepipe.engine.stage import cluster_has_gpus, require_gpus
from lanepipe.errors import InputError, LanepipeError, failures_recorded
from lanepipe.io import storage
from lanepipe.io.clip_cache import decode_cached
from lanepipe.io.layout import NULL_EDIT_SLUG, RunLayout
from lanepipe.io.video import encode
from lanepipe.metrics import IMAGE_METRIC_KEYS, edit_metrics, prediction_shift, trajectory_metrics
from lanepipe.predict.base import Predictor
from lanepipe.predict.registry import build_predictor
from lanepipe.stages.edit import EditStage, load_masks
from lanepipe.types import HISTORY_STEPS, CameraView, Clip, EgoState, Prediction, PredictorInput

#: The folder (in place of an instruction's slug) of a clip's re-encoded original and null edit.
NULL_SLUG = NULL_EDIT_SLUG


@contextmanager
def reseeded(predictor: Predictor, offset: int) -> Iterator[int | None]:
    """Run ``predictor`` with its seed moved by ``offset`` inside the block, if it has one.

    A predictor whose settings (``predictor.cfg``, a pydantic model) have an integer ``seed`` samples (e.g.
    ``alpamayo``); the block sees ``cfg.seed + offset`` and the old settings come back after it. Yields the seed
    used, or None for a predictor without one (deterministic: nothing changes).
    """
    cfg = getattr(predictor, "cfg", None)
    seed = getattr(cfg, "seed", None)
    if cfg is None or not isinstance(seed, int) or isinstance(seed, bool) or not hasattr(cfg, "model_copy"):
        yield None
        return
    predictor.cfg = cfg.model_copy(update={"seed": seed + offset})  # type: ignore[attr-defined]
    try:
        yield seed + offset
    finally:
        predictor.cfg = cfg  # type: ignore[attr-defined]


def _plain(o: Any) -> Any:
    """JSON stand-in for what a predictor's ``meta`` may hold: arrays and numpy scalars as lists / numbers, the rest
    as text."""
    return o.tolist() if hasattr(o, "tolist") else str(o)


def straight_history(speed: float) -> EgoState:
    """History of an ego that drove straight at ``speed`` m/s (used when a clip has no ego-motion)."""
    t = 0.1 * (np.arange(HISTORY_STEPS) - (HISTORY_STEPS - 1))
    xyz = np.stack([speed * t, np.zeros_like(t), np.zeros_like(t)], -1).astype(np.float32)
    rot = np.repeat(np.eye(3, dtype=np.float32)[None], HISTORY_STEPS, 0)
    return EgoState(xyz=xyz, rot=rot, speed=float(speed))


class EvaluateStage:
    """Loads every configured predictor once (:meth:`setup`); ``process`` evaluates the items of one edit row."""

    name = "evaluate"

    def __init__(self, cfg: RunConfig, root: str, run_id: str, upstream_root: str, upstream_run_id: str) -> None:
        self.cfg = cfg
        self.store = RunLayout(root, run_id)
        self.upstream = RunLayout(upstream_root, upstream_run_id)
        self._ready = False
        self._editor_args = (cfg, root, run_id, upstream_root, upstream_run_id)
        self._editor: EditStage | None = None
        self._floors: dict[tuple[str, str, float], dict[str, Any]] = {}

    def resources(self) -> Resources:
        """The predictors' default GPUs (:mod:`lanepipe.registry`; Alpamayo: one GPU when the cluster has GPUs)
        under ``evaluate.resources``: with ``alpamayo`` among the predictors this stage's actor pool is the Alpamayo
        pool, each actor owning one GPU and one worker process in Alpamayo's own Python environment. The
        ``alpamayo`` custom resource is asked for only where the cluster has it (the runner's ``prefer``). A full-size
        Alpamayo (not ``dry_run``, device not ``cpu``) on a cluster without GPUs is refused."""
        ev = self.cfg.evaluate
        defaults = [registry.default_resources("predictor", name) for name in ev.predictors]
        top = max(defaults, key=lambda d: d.num_gpus)
        heavy: list[str] = []
        if "alpamayo" in ev.predictors:
            opts = ev.predictor_options.get("alpamayo") or {}
            if not opts.get("dry_run") and opts.get("device", "cuda") != "cpu":
                heavy.append("evaluate.predictors=alpamayo (Alpamayo-R1-10B)")
        require_gpus(heavy, ev.resources)
        res: Resources = registry.DefaultResources(num_cpus=top.num_cpus, num_gpus=top.num_gpus,
                                          gpu_if_available=top.gpu_if_available).under(ev.resources,
                                                                                       cluster_has_gpus())
        return res

    def setup(self) -> None:
        """Build every configured predictor (models load here, once per worker)."""
        if self._ready:
            return
        ev = self.cfg.evaluate
        self.predictors: dict[str, Predictor] = {
            name: build_predictor(name, ev.predictor_options.get(name)) for name in ev.predictors}
        self._ready = True

    def _context(self, clip: Clip, edit: EditResult) -> ClipContext:
        ev = self.cfg.evaluate
        camera = edit.camera  # the painter's estimate, typed
        return load_context(str(edit.source), clip.width, clip.height, fov_deg=ev.fallback_fov_deg,
                            mount_height_m=ev.fallback_mount_height_m, pitch_deg=ev.fallback_pitch_deg,
                            estimated_camera=camera.to_dict() if camera else None,
                            speed_hint=float(edit.speed_mps or ev.assumed_speed_mps))

    def build_input(self, clip: Clip, frames: np.ndarray, ctx: ClipContext, t0: float,
                    edited_cameras: dict[str, np.ndarray] | None = None) -> PredictorInput:
        """The predictor input at clip time ``t0`` with ``frames`` as the front camera (original or edited).

        ``edited_cameras``: other cameras' edited frames (name → ``(T, H, W, 3)``, the clip's instants), which replace
        those cameras' views (same camera model, the clip's timestamps); ``meta["edited_cameras"]`` lists them."""
        if ctx.ego is not None:
            ego = ego_state_at(ctx.ego, ctx.time_offset + t0)
        else:
            ego = straight_history(ctx.speed_hint or self.cfg.evaluate.assumed_speed_mps)
        keep = clip.timestamps <= t0 + 1e-6
        front = CameraView(name="front", frames=frames[keep], timestamps=clip.timestamps[keep] - t0,
                           camera=ctx.camera)
        cams = {"front": front}
        for name, view_at in ctx.extra_cameras.items():
            cams[name] = view_at(ctx.time_offset + t0)
        edited = dict(edited_cameras or {})
        missing = sorted(set(edited) - set(cams))
        if missing:
            raise InputError(clip.source, f"edited cameras among the clip's cameras {sorted(cams)}",
                             f"edits of {missing}")
        for name, cam_frames in edited.items():
            n = min(len(cam_frames), int(keep.sum()))
            cams[name] = replace(cams[name], frames=cam_frames[:n], timestamps=clip.timestamps[:n] - t0)
        meta: dict[str, Any] = {"context": ctx.kind, "notes": ctx.notes}
        if edited_cameras is not None:
            meta["edited_cameras"] = ["front", *edited]
        return PredictorInput(clip=clip.name, cameras=cams, ego=ego, front="front", t0=t0, meta=meta)

    def edited_cameras(self, edit: EditResult, clip: Clip) -> dict[str, np.ndarray]:
        """The other cameras the edit stage painted (``camera_videos`` of the edit row): name → decoded frames."""
        raw = edit.get("camera_videos")
        videos = json.loads(raw) if isinstance(raw, str) and raw else dict(raw or {})
        out: dict[str, np.ndarray] = {}
        for name, url in videos.items():
            v = decode_cached(str(url), name=f"{clip.name}.{name}", target_fps=None, max_frames=clip.num_frames + 1)
            out[str(name)] = v.frames
        return out

    # ------------------------------------------------------------------------------------------ noise floor
    def _through_encoder(self, clip: Clip, frames: np.ndarray, url: str) -> Clip:
        """``frames`` as the edited clip reaches the predictor: encoded to ``url`` as the edit stage encodes
        (:func:`lanepipe.io.video.encode`, deterministic x264) and decoded; an existing ``url`` is decoded."""
        if not storage.exists(url):
            encode(frames, url, clip.fps)
        out = decode_cached(url, name=clip.name, target_fps=None, max_frames=clip.num_frames + 1)
        if out.frames.shape != clip.frames.shape:
            raise InputError(url, f"a re-encoded clip shaped like its source {clip.frames.shape}",
                             f"{out.frames.shape}")
        return replace(clip, frames=out.frames)

    def baseline(self, clip: Clip) -> Clip:
        """The original the shifts are measured from (``evaluate.baseline``): ``clip`` through the edit stage's
        encoder (``evaluate/<clip>/null-edit/original.mp4``), or ``clip`` itself for ``source``."""
        if self.cfg.evaluate.baseline == "source":
            return clip
        d = self.store.evaluate_paths(clip.name, NULL_SLUG, "original").dir
        return self._through_encoder(clip, clip.frames, storage.join(d, "original.mp4"))

    def _null_frames(self, clip: Clip, edit: EditResult) -> tuple[np.ndarray, dict[str, Any]]:
        """The null edit's frames before encoding, and what it did (for the floor's record)."""
        if self.cfg.evaluate.noise_floor.null_edit == "reencode":
            return clip.frames, {"instructions": []}
        if not edit.masks_npz:
            raise InputError(f"edit row of {clip.name}", "the road masks (masks_npz) a repaint null edit needs",
                             "none")
        if self._editor is None:
            self._editor = EditStage(*self._editor_args)
        editor = self._editor
        null = editor.null_edit(editor.with_context(clip), load_masks(str(edit.masks_npz), clip))
        return null.frames, {"instructions": null.instructions, "qa_verdicts": null.verdicts, "seen": null.seen}

    def noise_floor(self, clip: Clip, edit: EditResult, ctx: ClipContext, name: str, predictor: Predictor,
                    t0: float, pred_orig: Prediction) -> dict[str, Any]:
        """The null edit's shift for (clip, predictor): measured once per clip (kept in
        ``evaluate/<clip>/null-edit/<predictor>.json`` and reused by the clip's other edits and on resume).

        The null-edit prediction runs with the predictor's seed + 1 (:func:`reseeded`), so a sampling predictor's
        floor holds its spread between runs. Returns the record: ``shift`` (as :func:`prediction_shift`),
        ``null_edit`` (mode), ``instructions`` (repainted), ``seed``, ``baseline``, ``t0_s``.
        """
        nf = self.cfg.evaluate.noise_floor
        key = (clip.name, name, t0)
        paths = self.store.evaluate_paths(clip.name, NULL_SLUG, name)
        doc = self._floors.get(key)
        if doc is None and storage.exists(paths.evaluation):
            doc = json.loads(storage.read_text(paths.evaluation))
        if doc is not None and doc.get("t0_s") == t0 and doc.get("null_edit") == nf.null_edit \
                and doc.get("baseline") == self.cfg.evaluate.baseline:
            self._floors[key] = doc
            return doc
        t = time.perf_counter()
        frames, info = self._null_frames(clip, edit)
        null = self._through_encoder(clip, frames, storage.join(paths.dir, "edited.mp4"))
        with reseeded(predictor, 1) as seed:
            pred_null = predictor.predict(self.build_input(clip, null.frames, ctx, t0))
        shift = prediction_shift(pred_orig.trajectories, pred_null.trajectories)
        buf = io.BytesIO()
        np.savez_compressed(buf, original=pred_orig.trajectories, edited=pred_null.trajectories)
        storage.write_bytes_atomic(paths.arrays, buf.getvalue())
        doc = {"clip": clip.name, "instruction": "null edit", "predictor": name, "t0_s": t0,
               "null_edit": nf.null_edit, "baseline": self.cfg.evaluate.baseline, **info, "seed": seed,
               "shift": shift, "metrics": {"original": None, "edited": None},
               "reasoning": {"original": pred_orig.reasoning, "edited": pred_null.reasoning},
               "floor_s": time.perf_counter() - t}
        storage.write_text_atomic(paths.evaluation, json.dumps(doc, indent=2, default=float))
        self._floors[key] = doc
        return doc

    # ------------------------------------------------------------------------------------------ evaluate
    def _evaluate(self, edit: EditResult, clip: Clip, base: Clip, edited: Clip, ctx: ClipContext,
                  name: str, predictor: Predictor, row: dict[str, Any]) -> None:
        t0 = float(clip.timestamps[-1]) if self.cfg.evaluate.t0_s is None else float(self.cfg.evaluate.t0_s)
        inp_orig = self.build_input(clip, base.frames, ctx, t0)
        inp_edit = self.build_input(clip, edited.frames, ctx, t0, self.edited_cameras(edit, clip))
        t = time.perf_counter()
        pred_orig: Prediction = predictor.predict(inp_orig)
        pred_edit: Prediction = predictor.predict(inp_edit)
        predict_s = time.perf_counter() - t
        floor: dict[str, Any] | None = None
        if self.cfg.evaluate.noise_floor.enabled:
            try:
                floor = self.noise_floor(clip, edit, ctx, name, predictor, t0, pred_orig)
            except LanepipeError as e:  # no floor is not a failed edit: the row says why and has no p-value
                row["floor_error"] = str(e)
        gt = None
        metrics: dict[str, Any] = {"original": None, "edited": None}
        if ctx.ego is not None:
            gt = future_at(ctx.ego, ctx.time_offset + t0)
            metrics = {"original": trajectory_metrics(pred_orig.trajectories, gt),
                       "edited": trajectory_metrics(pred_edit.trajectories, gt)}
        shift = prediction_shift(pred_orig.trajectories, pred_edit.trajectories)
        paths = self.store.evaluate_paths(clip.name, str(row["slug"]), name)
        buf = io.BytesIO()
        arrays: dict[str, np.ndarray] = {"original": pred_orig.trajectories, "edited": pred_edit.trajectories,
                                         "history": inp_orig.ego.xyz,
                                         "front_timestamps": inp_orig.cameras["front"].timestamps}
        if gt is not None:
            arrays["ground_truth"] = gt
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        storage.write_bytes_atomic(paths.arrays, buf.getvalue())
        doc = {"clip": clip.name, "instruction": edit.instruction, "predictor": name, "t0_s": t0,
               "context": ctx.kind, "notes": ctx.notes, "speed_mps": inp_orig.ego.speed, "metrics": metrics,
               "shift": shift, "reasoning": {"original": pred_orig.reasoning, "edited": pred_edit.reasoning},
               "predict_s": predict_s, "frames_used": int(inp_orig.cameras["front"].frames.shape[0]),
               "camera": ctx.camera.to_dict(), "edited": row.get("edited"),
               "edited_cameras": inp_edit.meta.get("edited_cameras"),
               "predictor_meta": json.loads(json.dumps({"original": pred_orig.meta, "edited": pred_edit.meta},
                                                       default=_plain)),
               "baseline": self.cfg.evaluate.baseline,
               "floor": None if floor is None else {k: floor[k] for k in ("null_edit", "instructions", "seed",
                                                                            "shift")},
               "image_metrics": {k: row[k] for k in IMAGE_METRIC_KEYS if k in row}}
        storage.write_text_atomic(paths.evaluation, json.dumps(doc, indent=2, default=float))
        m_o, m_e = metrics["original"], metrics["edited"]
        row.update(t0_s=t0, shift_ade=shift["ade"], shift_max_lateral=shift["max_lateral_offset"],
                   min_ade_original=m_o["min_ade"] if m_o else None, min_ade_edited=m_e["min_ade"] if m_e else None,
                   min_fde_original=m_o["min_fde"] if m_o else None, min_fde_edited=m_e["min_fde"] if m_e else None,
                   predict_s=predict_s, evaluation=paths.evaluation,
                   edited_cameras=json.dumps(inp_edit.meta.get("edited_cameras")),
                   floor_ade_m=None if floor is None else floor["shift"]["ade"],
                   floor_max_lateral_m=None if floor is None else floor["shift"]["max_lateral_offset"])
        storage.write_text_atomic(paths.meta, json.dumps(row, default=str))

    def _image_metrics(self, clip: Clip, edited: Clip, edit: EditResult) -> dict[str, Any]:
        """PSNR/SSIM inside and outside the road mask and warping errors: as the edit stage measured them on the
        edited frames in memory (before encoding), or, for an edit row of an older run that lacks them, on the
        decoded ``edited.mp4``. Empty when neither is available."""
        recorded = {k: edit.get(k) for k in IMAGE_METRIC_KEYS if edit.get(k) is not None}
        if recorded:
            return recorded
        url = edit.masks_npz
        if not url or not storage.exists(str(url)):
            return {}
        return edit_metrics(clip.frames, edited.frames, load_masks(str(url), clip).masks)

    def __call__(self, edit: EditResult) -> list[PredictionResult]:
        """Evaluate rows (one per predictor) for one edit row. Never raises."""
        self.setup()
        slug = edit.slug or RunLayout.slug(str(edit.instruction))  # older runs: no slug
        base = {"run_id": self.store.run_id, "clip": edit.clip, "source": edit.source,
                "stage": "evaluate", "instruction": edit.instruction, "slug": slug, "status": "ok",
                "error": None, "error_type": None, "skipped": False, "qa_verdict": edit.qa_verdict}
        rows: list[dict[str, Any]] = []
        todo = []
        for name, predictor in self.predictors.items():
            row = base | {"predictor": name}
            meta = self.store.evaluate_paths(edit.clip, slug, name).meta
            if storage.exists(meta):
                rows.append(json.loads(storage.read_text(meta)) | {"skipped": True})
            elif not edit.ok:
                rows.append(row | {"status": "failed", "error_type": "UpstreamFailed",
                                   "error": f"edit failed: {edit.first_error_line}"})
            else:
                rows.append(row)
                todo.append((name, predictor, row))
        if not todo:
            return [PredictionResult.from_row(r) for r in rows]
        try:
            c = self.cfg.input
            clip = decode_cached(str(edit.source), name=edit.clip, target_fps=c.target_fps,
                          max_frames=c.max_frames, max_pixels=c.max_pixels, min_frames=c.min_frames)
            edited_url = self.upstream.edit_paths(clip.name, slug).video
            edited = decode_cached(edited_url, name=clip.name, target_fps=None, max_frames=clip.num_frames + 1)
            if edited.frames.shape != clip.frames.shape:
                raise InputError(edited_url, f"an edited clip shaped like its source {clip.frames.shape}",
                                 f"{edited.frames.shape}")
            ctx = self._context(clip, edit)
            reference = self.baseline(clip)
            images = self._image_metrics(clip, edited, edit)
            for _, _, row in todo:
                row["edited"] = edited_url
                row.update({k: v for k, v in images.items() if not isinstance(v, dict)})
        except Exception as e:
            msg = str(e) if isinstance(e, LanepipeError) else f"{type(e).__name__}: {e}"
            for _, _, row in todo:
                row.update(status="failed", error=msg, error_type=type(e).__name__)
            return [PredictionResult.from_row(r) for r in rows]
        for name, predictor, row in todo:
            with failures_recorded(row):  # a predictor that raises fails this item only
                self._evaluate(edit, clip, reference, edited, ctx, name, predictor, row)
        return [PredictionResult.from_row(r) for r in rows]

    def process(self, item: StageItem) -> list[StageItem]:
        """Pipeline entry: an edit result → it passed through plus one prediction result per predictor."""
        if not isinstance(item, EditResult):
            return [item]
        return [item, *self(item)]

"""The generative edit as two stages (``edit.placement=split``): a pipeline across clips over two actor pools.

``placement=whole`` (the default) runs :class:`~lanepipe.stages.edit.EditStage`: each edit actor holds FLUX Fill,
the judge and CogVideoX, and does a clip's instructions start to end. ``placement=split`` puts two stages in the
Ray Data pipeline in its place, each a stateful actor pool that loads only its own models, once per actor:

1. :class:`FirstFrameStage` (``edit_first_frame``, ``edit.split_first_frame_actors`` actors): FLUX Fill and the
   judge run the QA loop's attempts (:func:`lanepipe.edit.base.run_attempts`: first-frame retries with revised
   captions and seeds happen here), write the settled first frame as ``first_frame.png`` (lossless, the file the
   whole placement writes too) and emit a :class:`~lanepipe.engine.items.FirstFrameItem` per instruction: the
   frame by reference, the loop's records, prompt and seed; small and JSON-ready between actors;
2. :class:`PropagateStage` (``edit``, the other actors): reads the clip, its masks and the first frame again and
   finishes the job (:meth:`~lanepipe.edit.generative.painter.GenerativeJob.resume`: CogVideoX windows, composite),
   then writes the outputs exactly as the whole placement does (``meta.json`` last). A propagation that raises is
   a failed edit row (``failed_phase=propagate``, the QA verdict it had kept), the sweep goes on.

The same seed gives the same outputs as ``whole``: the first frame's PNG is lossless and the tiny / random-init
models are seeded per pipeline. Finished edits (``meta.json``) and a failed segment row are settled in the first
stage and passed through the second. The first stage's items travel on (without their records) so a run reports
that pool's busy seconds and model loads (``manifest.json``, ``stages.edit.first_frame``).

Split ratio: the pools keep pace when ``k / t_first = (N - k) / t_propagate`` (``N`` actors in all, each holding
one GPU). With the per-clip times measured on one H200 (:data:`FIRST_FRAME_S`, :data:`PROPAGATE_S`: FLUX + judge
3.6 s, CogVideoX + composite 77.7 s) the balance is ``k = N * 3.6 / 81.3``, under 1.5 up to 33 GPUs: one
first-frame actor (:func:`first_frame_share`). Each further QA attempt adds about 3.6 s to ``t_first``. The split
then runs at ``(N - 1) / 77.7`` clips/s against ``N / 81.3`` for ``whole``: below ``whole`` up to 22 GPUs (0.52 of it
on 2, 0.78 on 4, 0.92 on 8); its gain is memory (a propagation GPU holds CogVideoX alone), not speed.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe import registry
from lanepipe.config import Resources, RunConfig
from lanepipe.edit.base import QAOutcome, run_attempts
from lanepipe.edit.generative.painter import GenerativeJob, GenerativePainter
from lanepipe.engine.items import EditResult, FirstFrameItem, SegmentResult, StageItem
from lanepipe.errors import ConfigError, InputError, LanepipeError, failures_recorded
from lanepipe.io import storage
from lanepipe.lanes.instructions import LaneSpec, parse_instruction
from lanepipe.metrics import original_flows
from lanepipe.stages.edit import EditStage
from lanepipe.types import Clip, RoadMasks

#: Seconds per clip of each half on one H200 (BENCHMARKS.md, "Generative stack on one H200 (issues 5 and 6)",
#: editing one clip end to end, 50 steps, compiled blocks, 49 frames at 720x480 composited into 1280x720): the first
#: frame 2.81 s + one judge call 0.82 s; CogVideoX propagation 73.66 s + compositing 4.02 s (CPU, in this stage).
FIRST_FRAME_S = 2.81 + 0.82
PROPAGATE_S = 73.66 + 4.02
#: The stage name of the first-frame pool (its actors show as ``EditFirstFrameActor``).
FIRST_FRAME_STAGE = "edit_first_frame"


def first_frame_share(total: int, first_s: float = FIRST_FRAME_S, propagate_s: float = PROPAGATE_S) -> int:
    """First-frame actors out of ``total`` so that neither pool waits for the other: the ``k`` nearest to
    ``total * first_s / (first_s + propagate_s)`` (equal clip rates ``k / first_s = (total - k) / propagate_s``),
    at least 1 and at most ``total - 1``.

    Raises:
        ConfigError: ``total`` < 2 or a time not > 0.
    """
    if total < 2:
        raise ConfigError(f"edit.placement=split: expected >= 2 edit actors, found {total}")
    if not (first_s > 0 and propagate_s > 0):
        raise ConfigError(f"first_frame_share: expected stage seconds > 0, found {first_s}, {propagate_s}")
    return min(total - 1, max(1, round(total * first_s / (first_s + propagate_s))))


def split_actors(cfg: RunConfig) -> tuple[int, int]:
    """``(first-frame actors, propagation actors)`` of ``edit.resources.concurrency`` under ``placement=split``."""
    total = cfg.edit.resources.concurrency
    k = cfg.edit.split_first_frame_actors or first_frame_share(total)
    return k, total - k


def _pool(res: Resources, actors: int) -> Resources:
    """``res`` for a pool of ``actors``, one clip in flight per actor: the split stages do not take the whole
    stage's device turn (:class:`~lanepipe.monitoring.DeviceTurn`), so two clips in one actor would share its GPU."""
    out: Resources = res.model_copy(update={"concurrency": actors, "min_concurrency": None, "in_flight": 1})
    return out


def _painter(stage: EditStage) -> Any:
    """The configured painter (checked to be the generative one: the other painters have no first-frame phase)."""
    painter = registry.create_from("painter", stage.cfg.edit)
    if not isinstance(painter, GenerativePainter):
        raise ConfigError(f"edit.placement=split needs the flux_cogvideox painter, got {type(painter).__name__}")
    return painter


class FirstFrameStage(EditStage):
    """FLUX Fill + the judge: the QA loop's attempts for each instruction of a clip (see the module docstring)."""

    name = FIRST_FRAME_STAGE
    generative: GenerativePainter

    def resources(self) -> Resources:
        """The edit stage's resources (per actor) for :func:`split_actors`' first count of actors."""
        return _pool(super().resources(), split_actors(self.cfg)[0])

    def setup(self) -> None:
        """FLUX Fill and the judge, once per actor (CogVideoX is the other pool's)."""
        if self._ready:
            return
        painter = _painter(self)
        self.painter = self.generative = painter
        self.generative.setup(phases=("flux",))
        self.verifier = registry.create_from("verifier", self.cfg.verify)
        self._ready = True

    def first_frame(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, row: dict[str, Any]) -> FirstFrameItem:
        """The QA loop's attempts for one instruction; the settled first frame written, its item returned."""
        t0 = time.perf_counter()
        tried = run_attempts(self.painter, self.verifier, clip, masks, spec, self.cfg.edit.qa)
        job = tried.job
        if not isinstance(job, GenerativeJob) or job.first is None:
            raise ConfigError(f"edit.placement=split: the painter's job {type(job).__name__} has no first frame")
        d = self.store.edit_paths(clip.name, spec.slug)
        ok, png = cv2.imencode(".png", cv2.cvtColor(job.first, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"PNG encoding of the first frame of {clip.name} failed")
        storage.write_bytes_atomic(d.first_frame, png.tobytes())
        return FirstFrameItem(
            run_id=row["run_id"], clip=row["clip"], source=row["source"], instruction=row["instruction"],
            slug=row["slug"], caption=row["caption"], backend=row["backend"], first_frame=d.first_frame,
            prompt=job.prompt, seed=job.seed, attempts=job.attempts, passed=tried.passed,
            iterations=tried.iterations, flux_s=job.flux_s, judge_s=job.judge_s,
            qa_fields={"stopped_early": tried.stopped} if tried.stopped is not None else {},
            qa_s=time.perf_counter() - t0,
            extra={"verifier": self.verifier.name, "flux_device": self.generative._fill_device,
                   "placement": list(self.generative.placement)})

    def __call__(self, seg: SegmentResult) -> list[StageItem]:  # type: ignore[override]
        """Per instruction: a first-frame item, or the edit row when it is settled here (finished before, the
        segment stage failed, or the loop raised). Never raises."""
        self.setup()
        rows, todo = self.plan(seg)
        out: dict[int, StageItem] = {}
        if todo:
            try:
                clip, masks = self.load_inputs(seg)
            except Exception as e:
                msg = str(e) if isinstance(e, LanepipeError) else f"{type(e).__name__}: {e}"
                for _, row in todo:
                    row.update(status="failed", error=msg, error_type=type(e).__name__)
            else:
                for spec, row in todo:
                    with failures_recorded(row):
                        out[id(row)] = self.first_frame(clip, masks, spec, row)
        return [out.get(id(r)) or EditResult.from_row(r) for r in rows]

    def process(self, item: StageItem) -> list[StageItem]:
        """A segment result → it passed through plus one item per instruction; anything else passes."""
        if not isinstance(item, SegmentResult):
            return [item]
        return [item, *self(item)]


class PropagateStage(EditStage):
    """CogVideoX + composite: finishes each first-frame item into the edit's outputs (see the module docstring)."""

    name = "edit"
    generative: GenerativePainter

    def __init__(self, cfg: RunConfig, root: str, run_id: str, upstream_root: str, upstream_run_id: str) -> None:
        super().__init__(cfg, root, run_id, upstream_root, upstream_run_id)
        self._inputs: tuple[str, Clip, RoadMasks, list[npt.NDArray[np.float32]] | None] | None = None

    def resources(self) -> Resources:
        """The edit stage's resources (per actor) for :func:`split_actors`' second count of actors."""
        return _pool(super().resources(), split_actors(self.cfg)[1])

    def setup(self) -> None:
        """CogVideoX (and its hooks), once per actor; FLUX and the judge are the other pool's."""
        if self._ready:
            return
        painter = _painter(self)
        self.painter = self.generative = painter
        self.generative.setup(phases=("video",))
        self._ready = True

    def _clip_inputs(self, ff: FirstFrameItem) -> tuple[Clip, RoadMasks, list[npt.NDArray[np.float32]] | None]:
        """The clip, its masks and the original's flows (for the image metrics), kept for its next instruction."""
        if self._inputs is None or self._inputs[0] != ff.clip:
            seg = SegmentResult(clip=ff.clip, source=ff.source)
            clip, masks = self.load_inputs(seg)
            self._inputs = (ff.clip, clip, masks, original_flows(clip.frames) if clip.num_frames > 1 else None)
        return self._inputs[1], self._inputs[2], self._inputs[3]

    def propagate(self, ff: FirstFrameItem) -> EditResult:
        """The edit row of one first-frame item: propagated and written, or failed (``failed_phase``). Never
        raises."""
        row: dict[str, Any] = {"run_id": ff.run_id, "clip": ff.clip, "source": ff.source, "stage": "edit",
                               "backend": ff.backend, "status": "ok", "error": None, "error_type": None,
                               "skipped": False, "instruction": ff.instruction, "caption": ff.caption,
                               "slug": ff.slug}
        try:
            spec = parse_instruction(str(ff.instruction))
            clip, masks, flows = self._clip_inputs(ff)
            raw = cv2.imdecode(np.frombuffer(storage.read_bytes(str(ff.first_frame)), np.uint8), cv2.IMREAD_COLOR)
            if raw is None or raw.shape != clip.frames.shape[1:]:
                raise InputError(str(ff.first_frame), f"a {clip.width}x{clip.height} PNG first frame",
                                 "an unreadable file" if raw is None else f"shape {raw.shape}")
            first = np.asarray(cv2.cvtColor(raw, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            t0 = time.perf_counter()
            job = GenerativeJob.resume(self.generative, clip, masks, spec, first, prompt=str(ff.prompt),
                                       seed=int(ff.seed or 0), attempts=ff.attempts, flux_s=ff.flux_s,
                                       judge_s=ff.judge_s)
            verifier = str(ff.extra.get("verifier") or self.cfg.verify.backend)
            result = job.finish(verifier)
            diag = result.diagnostics
            diag["devices"] = {**diag.get("devices", {}), "flux": ff.extra.get("flux_device")}
            diag["placement"] = [*ff.extra.get("placement", []), *diag.get("placement", [])]
            diag["edit_placement"] = "split"
            outcome = QAOutcome(result=result, iterations=ff.iterations, passed=ff.passed,
                                qa_fields={**job.qa_fields(), **ff.qa_fields})
            self.write_outcome(clip, masks, spec, row, outcome, ff.qa_s + time.perf_counter() - t0, flows)
        except Exception as e:  # recorded with the verdict the QA loop had reached; the sweep goes on
            verdict = ff.iterations[-1].get("verdict") if ff.iterations else None
            msg = str(e) if isinstance(e, LanepipeError) else f"{type(e).__name__}: {e}\n" \
                f"{traceback.format_exc(limit=3)}"
            row.update(status="failed", error=f"propagation of the first frame (QA verdict {verdict}) failed: {msg}",
                       error_type=type(e).__name__, failed_phase="propagate", qa_verdict=verdict,
                       qa_iterations=len(ff.iterations))
        return EditResult.from_row(row)

    def process(self, item: StageItem) -> list[StageItem]:
        """A first-frame item → it passed on without its records, plus its edit row; anything else passes."""
        if not isinstance(item, FirstFrameItem):
            return [item]
        self.setup()
        return [replace(item, iterations=[], qa_fields={}), self.propagate(item)]

"""The procedural painter: analyse once (cached across QA retries), then erase and paint every frame."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from lanepipe.edit.config import ProceduralConfig, QAConfig
from lanepipe.edit.procedural.analysis import ClipAnalyser, ClipAnalysis, map_frames
from lanepipe.edit.procedural.params import PaintedLine, PaintParams, PaintResult, RoadGeometry
from lanepipe.edit.procedural.rectify import Rectified, back_to_ftheta, ftheta_from_meta, lines_to_ftheta, rectify
from lanepipe.edit.procedural.render import FrameRenderer
from lanepipe.errors import InputError
from lanepipe.geometry.ftheta import FThetaCamera
from lanepipe.lanes.instructions import LaneSpec
from lanepipe.types import Clip, RoadMasks
from lanepipe.verify.base import Verdict


class ProceduralPainter:
    """Erase the ego lane's markings and paint requested ones in perspective (see the module docstring).

    Args:
        cfg: painter settings; defaults when None.
    """

    name = "procedural"

    def __init__(self, cfg: ProceduralConfig | None = None) -> None:
        self.cfg = cfg or ProceduralConfig()
        self._analyser = ClipAnalyser(self.cfg, self.name)
        self._renderer = FrameRenderer(self.cfg)
        self._cache_refs: tuple[Any, ...] | None = None
        self._cache: ClipAnalysis | None = None
        self._rect_refs: tuple[Any, ...] | None = None
        self._rect: Rectified | None = None

    # ------------------------------------------------------------------------------------------ public
    def prepare(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, qa: QAConfig | None = None) -> ProceduralJob:
        """Stepwise painter contract (:class:`lanepipe.edit.base.Painter`): see :class:`ProceduralJob`."""
        del qa
        return ProceduralJob(self, clip, masks, spec)

    def paint(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, params: PaintParams | None = None) -> PaintResult:
        """Paint ``spec`` on ``clip`` inside ``masks``.

        Args:
            clip: ``(T, H, W, 3) uint8`` frames; ``meta["camera"]`` (a pinhole, or an f-theta camera: see
                :mod:`~lanepipe.edit.procedural.rectify`; an object or its dict) and ``meta["ego"]``
                (``(T, 4)`` x, y, yaw, speed) or ``meta["speed_mps"]`` are used when present.
            masks: ``(T, H, W) bool`` road masks, True = road.
            spec: the instruction.
            params: QA-loop knobs (defaults when None).

        Returns:
            :class:`PaintResult` with ``(T, H, W, 3) uint8`` frames, painted lines per frame and diagnostics.

        Raises:
            InputError: masks of another shape, an all-zero mask, or an instruction this road cannot take
                (no road where the line goes; a double line on a road narrower than
                ``min_double_road_width_m``).
        """
        params = params or PaintParams()
        t0 = time.perf_counter()
        masks.check_matches(clip)
        ftheta = ftheta_from_meta(clip.meta)
        if ftheta is not None:
            return self._paint_ftheta(clip, masks, spec, params, ftheta)
        if not masks.masks.any():
            raise InputError(clip.source, "a road mask with road pixels to paint on",
                             "an all-zero mask in every frame", "segment the clip first or check the mask file")
        an = self._analyse(clip, masks)
        t1 = time.perf_counter()
        sides: list[str] = ["left", "right"] if spec.side == "both" else [str(spec.side)]
        stripes = self._renderer.stripes(spec, params)
        if not spec.is_removal:
            self._renderer.check_feasible(clip, masks, an, sides, stripes, spec)
        out = np.empty_like(clip.frames)

        def one(t: int) -> list[PaintedLine]:
            return self._renderer.render(out[t], t, clip, masks.masks[t], an, spec, sides, stripes, params)

        lanes = map_frames(one, range(clip.num_frames), self.cfg.threads)
        t2 = time.perf_counter()
        diag = dict(an.diagnostics)
        diag.update(instruction=spec.to_text(), params=params.model_dump(),
                    timing_s={"analyse": round(t1 - t0, 3), "render": round(t2 - t1, 3)},
                    frames_without_road=int((~masks.masks.any(axis=(1, 2))).sum()))
        coefs = {s: an.coefs[s].copy() for s in ("left", "right")}
        for c in coefs.values():
            c[:, 0] += params.lateral_offset_m
        road = RoadGeometry(camera=an.cam, coefs=coefs, fit_range_m=an.fit_range_m, travelled=an.travelled.copy(),
                            params=params)
        return PaintResult(frames=out, lanes=lanes, diagnostics=diag, road=road)

    def _paint_ftheta(self, clip: Clip, masks: RoadMasks, spec: LaneSpec, params: PaintParams,
                      cam: FThetaCamera) -> PaintResult:
        """Paint through a level pinhole view of the f-theta frames (:mod:`~lanepipe.edit.procedural.rectify`)."""
        t0 = time.perf_counter()
        refs = (clip, masks, clip.frames, masks.masks)
        if self._rect is None or self._rect_refs is None \
                or not all(a is b for a, b in zip(self._rect_refs, refs, strict=True)):
            self._rect_refs, self._rect = refs, rectify(clip, masks, cam)
        rect = self._rect
        t1 = time.perf_counter()
        res = self.paint(rect.clip, rect.masks, spec, params)
        t2 = time.perf_counter()
        frames = back_to_ftheta(rect, clip.frames, res.frames)
        diag = dict(res.diagnostics)
        diag.update(camera_model="ftheta", camera=rect.ftheta.to_dict(),
                    camera_source=f"clip meta: f-theta {rect.ftheta.name!r}, analysed and painted in a level pinhole "
                                  f"view at its centre ({rect.pinhole.width}x{rect.pinhole.height}), mapped back",
                    analysis_camera={k: (round(v, 5) if isinstance(v, float) else v)
                                     for k, v in rect.pinhole.to_dict().items()})
        diag["timing_s"] = {**diag.get("timing_s", {}), "rectify": round(t1 - t0, 3),
                            "map_back": round(time.perf_counter() - t2, 3)}
        return PaintResult(frames=frames, lanes=lines_to_ftheta(rect, res.lanes), diagnostics=diag, road=res.road)

    # ------------------------------------------------------------------------------------------ analysis
    def analysis(self, clip: Clip, masks: RoadMasks) -> ClipAnalysis:
        """What the painter measured on ``clip`` (camera, boundary tracks, paint appearance), cached as for
        :meth:`paint`; for measuring an edit against the painter's own geometry."""
        masks.check_matches(clip)
        return self._analyse(clip, masks)

    def _analyse(self, clip: Clip, masks: RoadMasks) -> ClipAnalysis:
        """The clip analysis, cached for the last (clip, masks) pair seen (the QA loop repaints the same clip)."""
        refs = (clip, masks, clip.frames, masks.masks)
        if self._cache is not None and self._cache_refs is not None \
                and all(a is b for a, b in zip(self._cache_refs, refs, strict=True)):
            return self._cache
        an = self._analyser.analyse(clip, masks)
        self._cache_refs, self._cache = refs, an
        return an


# ============================================================================================== QA steps
class ProceduralJob:
    """The procedural painter's QA steps (:class:`lanepipe.edit.base.PaintJob`): each attempt paints the whole clip
    with the current :class:`PaintParams`; a FAIL adjusts them from the verdict's typed reasons; ``finish`` returns the
    last attempt. Records: ``params`` and what the verifier saw (``seen``) or said (``revised_caption``, ``raw``).
    """

    def __init__(self, painter: ProceduralPainter, clip: Clip, masks: RoadMasks, spec: LaneSpec) -> None:
        self.painter, self.clip, self.masks, self.spec = painter, clip, masks, spec
        self.params = PaintParams()
        self.attempts = 0
        self.result: PaintResult | None = None

    def attempt(self) -> npt.NDArray[np.uint8]:
        self.result = self.painter.paint(self.clip, self.masks, self.spec, self.params)
        self.attempts += 1
        return self.result.frames

    def record(self, verdict: Verdict | None, check_s: float) -> dict[str, Any]:
        del check_s
        params = self.params.model_dump()
        if verdict is None:
            return {"verdict": "SKIPPED", "reasons": [], "params": params}
        seen: dict[str, Any] = ({"seen": verdict.report.to_dict()} if verdict.report is not None
                                else {"revised_caption": verdict.revised_caption, "raw": verdict.raw})
        return {"params": params, **seen, "verdict": "PASS" if verdict.passed else "FAIL",
                "reasons": list(verdict.reasons)}

    def adjust(self, verdict: Verdict) -> None:
        self.params = self.params.adjusted(verdict.failures, self.attempts - 1)

    def finish(self, verifier: str) -> PaintResult:
        del verifier
        assert self.result is not None, "finish() before any attempt()"
        return self.result

    def qa_fields(self) -> dict[str, Any]:
        return {}

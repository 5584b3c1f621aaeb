"""The segment stage for one clip: decode → segment → write every output → meta.json last.

A :class:`~lanepipe.engine.Stage` (no Ray): the generic actor (:mod:`lanepipe.actors`) and the sequential runner
both host it.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import traceback
from typing import Any

import cv2
import fsspec
import numpy as np
import numpy.typing as npt

from lanepipe import registry
from lanepipe.config import Resources, RunConfig
from lanepipe.datasets.sources import ClipRef
from lanepipe.engine.items import ClipItem, SegmentResult, StageItem
from lanepipe.engine.stage import cluster_has_gpus, require_gpus
from lanepipe.errors import LanepipeError
from lanepipe.io import storage
from lanepipe.io.clip_cache import decode_cached
from lanepipe.io.layout import RunLayout, SegmentPaths
from lanepipe.io.video import encode
from lanepipe.segment import build_segmenter, grid_points_px
from lanepipe.types import Clip, RoadMasks

OVERLAY_COLOR = np.array([0, 255, 80], dtype=np.float32)


def file_sha256(url: str) -> str | None:
    """sha256 of a file's bytes, streamed; None when it cannot be read."""
    h = hashlib.sha256()
    try:
        with fsspec.open(url, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def overlay_frames(clip: Clip, masks: RoadMasks, alpha: float = 0.4) -> npt.NDArray[np.uint8]:
    """Tint the road green and mark the 9 prompt points: ``(T, H, W, 3) uint8``."""
    f = clip.frames.astype(np.float32)
    m = masks.masks[..., None]
    out: npt.NDArray[np.uint8] = np.where(m, f * (1 - alpha) + OVERLAY_COLOR * alpha, f).astype(np.uint8)
    pts = grid_points_px(clip.width, clip.height).round().astype(int)
    r = max(2, clip.width // 160)
    for t in range(out.shape[0]):
        frame = np.ascontiguousarray(out[t])
        for x, y in pts:
            cv2.circle(frame, (int(x), int(y)), r, (255, 60, 60), -1, lineType=cv2.LINE_AA)
        out[t] = frame
    return out


def _npz_bytes(ids: npt.NDArray[np.uint8], hood_top: npt.NDArray[np.int32] | None = None) -> bytes:
    """``all_masks.npz``: the mask ids under key ``arr_0`` (as VideoPainter reads it) and, when the clip shows the
    ego vehicle's hood, its ``(W,)`` first row per column under ``hood_top``."""
    buf = io.BytesIO()
    if hood_top is None:
        np.savez_compressed(buf, ids)
    else:
        np.savez_compressed(buf, ids, hood_top=hood_top)
    return buf.getvalue()


def write_segment_outputs(paths: SegmentPaths, clip: Clip, masks: RoadMasks, *, overlay: bool,
                          videopainter: bool) -> None:
    """Write masks PNGs, all_masks.npz, overlay.mp4 and the VideoPainter export (not meta.json)."""
    ids = masks.masks.astype(np.uint8)  # mask id 1 = road
    for i, m in enumerate(ids):
        ok, png = cv2.imencode(".png", m * 255)
        if not ok:
            raise RuntimeError(f"PNG encoding failed for frame {i} of {clip.name}")
        storage.write_bytes_atomic(paths.mask_png(i), png.tobytes())
    storage.write_bytes_atomic(paths.npz, _npz_bytes(ids, masks.hood_top))
    if overlay:
        encode(overlay_frames(clip, masks), paths.overlay, clip.fps)
    if videopainter:
        storage.write_bytes_atomic(paths.vp_npz, _npz_bytes(ids))
        encode(clip.frames, paths.vp_video, clip.fps)


class SegmentStage:
    """Loads the configured segmentation backend once (:meth:`setup`); ``__call__`` processes one clip."""

    name = "segment"

    def __init__(self, cfg: RunConfig, root: str, run_id: str, upstream_root: str | None = None,
                 upstream_run_id: str | None = None) -> None:
        self.cfg = cfg
        self.store = RunLayout(root, run_id)
        self._ready = False

    def resources(self) -> Resources:
        """The segmenter's default resources (:mod:`lanepipe.registry`) under ``segment.resources``."""
        sam2 = self.cfg.segment.sam2
        if self.cfg.segment.backend == "sam2" and sam2.preset == "random-init" and sam2.device != "cpu":
            require_gpus(["segment.backend=sam2 (segment.sam2.preset=random-init)"], self.cfg.segment.resources)
        res: Resources = registry.default_resources("segmenter", self.cfg.segment.backend).under(
            self.cfg.segment.resources, cluster_has_gpus())
        return res

    def setup(self) -> None:
        """Build the segmentation backend (its model loads here, once per worker)."""
        if not self._ready:
            self.segmenter = build_segmenter(self.cfg.segment)
            self._ready = True

    def load(self, ref: ClipRef) -> Clip:
        c = self.cfg.input
        return decode_cached(ref.source, name=ref.name, target_fps=c.target_fps, max_frames=c.max_frames,
                      max_pixels=c.max_pixels, min_frames=c.min_frames)

    def process(self, item: StageItem) -> list[StageItem]:
        """Pipeline entry: a clip → its segment result; a finished clip is read back, not redone."""
        if not isinstance(item, ClipItem):
            return [item]
        self.setup()
        meta_url = self.store.segment_paths(item.name).meta
        if storage.exists(meta_url):
            return [SegmentResult.from_row(json.loads(storage.read_text(meta_url)) | {"skipped": True})]
        return [SegmentResult.from_row(self(ClipRef(source=item.source, name=item.name)) | {"skipped": False})]

    def __call__(self, ref: ClipRef) -> dict[str, Any]:
        """Segment one clip and write its outputs. Never raises: failures become a row with the reason."""
        self.setup()
        row: dict[str, Any] = {"run_id": self.store.run_id, "clip": ref.name, "source": ref.source,
                               "stage": "segment", "backend": self.cfg.segment.backend, "status": "ok",
                               "error": None, "error_type": None, "num_frames": 0, "fps": None,
                               "width": None, "height": None, "road_fraction": None, "input_sha256": None,
                               "decode_s": None, "segment_s": None, "write_s": None, "hood_row": None}
        paths = self.store.segment_paths(ref.name)
        try:
            t0 = time.perf_counter()
            clip = self.load(ref)
            t1 = time.perf_counter()
            masks = self.segmenter.segment(clip)
            masks.check_matches(clip)
            t2 = time.perf_counter()
            write_segment_outputs(paths, clip, masks, overlay=self.cfg.segment.overlay,
                                  videopainter=self.cfg.segment.videopainter)
            t3 = time.perf_counter()
            row.update(num_frames=clip.num_frames, fps=clip.fps, width=clip.width, height=clip.height,
                       road_fraction=float(masks.masks.mean()), input_sha256=file_sha256(ref.source),
                       decode_s=t1 - t0, segment_s=t2 - t1, write_s=t3 - t2, masks_npz=paths.npz,
                       # the ego vehicle's hood (cut from the masks): its highest row; all_masks.npz has its
                       # per-column top row (key hood_top)
                       hood_row=None if masks.hood_top is None else int(masks.hood_top.min()),
                       overlay=paths.overlay if self.cfg.segment.overlay else None)
            storage.write_text_atomic(paths.meta, json.dumps(row, indent=2, default=str))
        except LanepipeError as e:
            row.update(status="failed", error=str(e), error_type=type(e).__name__)
        except Exception as e:  # one bad clip never stops a sweep: record it with its traceback tail
            tb = traceback.format_exc(limit=3)
            row.update(status="failed", error=f"{type(e).__name__}: {e}\n{tb}", error_type=type(e).__name__)
        return row

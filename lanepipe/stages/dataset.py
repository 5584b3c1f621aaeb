"""The dataset stage: one clip → its selected frames' images, masks, captions and records (no Ray)."""

from __future__ import annotations

import json
import posixpath
import time
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lanepipe.config import DatasetConfig, Resources
from lanepipe.datasets.captions import ATTRIBUTES, UNKNOWN, Caption, build_captioner
from lanepipe.datasets.frames import read_frames
from lanepipe.datasets.schema import _FRAME_KEY, CLIPS_DIR, IMAGES_DIR, MASKS_DIR, RECORDS_DIR, frame_key
from lanepipe.datasets.sources import ClipRef
from lanepipe.engine.items import ClipItem, DatasetResult, StageItem
from lanepipe.errors import failures_recorded
from lanepipe.io import storage
from lanepipe.lanes.instructions import parse_caption
from lanepipe.types import Clip, RoadMasks

U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]


def _png(image: npt.NDArray[np.uint8], what: str) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {what}")
    return bytes(buf.tobytes())


def _selection(cfg: DatasetConfig) -> dict[str, Any]:
    return {"frames": cfg.frames, "stride": cfg.effective_stride, "max_frames": cfg.max_frames,
            "segment": cfg.segment.backend, "captioner": cfg.captioner, "boundary": cfg.boundary}


class DatasetStage:
    """One clip → its selected frames' images, masks, captions and records (a :class:`~lanepipe.engine.Stage`).

    :meth:`setup` builds the segmentation backend (``segment.backend``, as the segment stage does) and the
    captioner once per worker; :meth:`process` is the runners' entry point, :meth:`__call__` does one clip.
    """

    name = "dataset"

    def __init__(self, cfg: DatasetConfig, root: str) -> None:
        self.cfg = cfg
        self.root = storage.absolute(root)
        self._ready = False

    def resources(self) -> Resources:
        return self.cfg.resources

    def setup(self) -> None:
        """Build the segmenter and the captioner (their models load here); ones already given are kept."""
        if self._ready:
            return
        from lanepipe.segment import build_segmenter

        if "segmenter" not in vars(self):
            self.segmenter = build_segmenter(self.cfg.segment)
        if "captioner" not in vars(self):
            self.captioner = build_captioner(self.cfg)
        self._ready = True

    def url(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def _done_indices(self, clip: str) -> set[int]:
        fs, path = storage.filesystem(self.url(RECORDS_DIR))
        pattern = posixpath.join(path, f"{clip}_f*.json")
        found = storage.retry(lambda: fs.glob(pattern), what=f"list records of {clip}")
        out: set[int] = set()
        for p in found:
            m = _FRAME_KEY.match(posixpath.basename(str(p)).removesuffix(".json"))
            if m and m.group("clip") == clip:
                out.add(int(m.group("index")))
        return out

    def process(self, item: StageItem) -> list[StageItem]:
        """Pipeline entry: a clip → its dataset result (the frames written for it)."""
        if not isinstance(item, ClipItem):
            return [item]
        return [DatasetResult.from_row(self(ClipRef(source=item.source, name=item.name)))]

    def __call__(self, ref: ClipRef) -> dict[str, Any]:
        """Do one clip. Never raises: a failure becomes a row with the reason (the other clips go on)."""
        self.setup()
        t_start = time.perf_counter()
        selection = _selection(self.cfg)
        row: dict[str, Any] = {"clip": ref.name, "source": ref.source, "stage": "dataset", "status": "ok",
                               "error": None, "error_type": None, "backend": self.segmenter.name,
                               "captioner": self.captioner.name, "selection": selection, "frames": [],
                               "num_frames": 0, "frames_resumed": 0, "frames_dropped": [], "missing_indices": [],
                               "skipped": False, "seconds": None}
        marker = self.url(CLIPS_DIR, f"{ref.name}.json")
        with failures_recorded(row):  # one bad clip never stops the others
            if storage.exists(marker):
                done: dict[str, Any] = json.loads(storage.read_text(marker))
                if done.get("selection") == selection and done.get("source") == ref.source:
                    return done | {"skipped": True, "num_frames": 0, "frames_resumed": len(done.get("frames", []))}
            self._run(ref, row)
            row["seconds"] = round(time.perf_counter() - t_start, 3)
            storage.write_text_atomic(marker, json.dumps(row, indent=2, default=str))
        row["seconds"] = round(time.perf_counter() - t_start, 3)
        return row

    def _run(self, ref: ClipRef, row: dict[str, Any]) -> None:
        cfg = self.cfg
        done = self._done_indices(ref.name)
        if cfg.frames is not None and set(cfg.frames) <= done:  # nothing to decode
            row.update(frames=list(cfg.frames), frames_resumed=len(cfg.frames))
            return
        clip = read_frames(ref.source, name=ref.name, frames=cfg.frames, stride=cfg.effective_stride,
                           max_frames=cfg.max_frames, max_pixels=cfg.max_pixels)
        indices = [int(i) for i in clip.source_indices]
        row.update(missing_indices=clip.meta.get("missing_indices", []), frames_resumed=len(set(indices) & done))
        todo = [k for k, i in enumerate(indices) if i not in done]
        kept = [i for i in indices if i in done]
        if todo:
            sub = Clip(name=clip.name, source=clip.source, frames=np.ascontiguousarray(clip.frames[todo]),
                       fps=clip.fps, timestamps=clip.timestamps[todo], source_fps=clip.source_fps,
                       source_indices=clip.source_indices[todo], meta=clip.meta)
            masks: RoadMasks = self.segmenter.segment(sub)
            masks.check_matches(sub)
            captions = self.captioner.caption(sub.frames, masks.masks)
            if len(captions) != sub.num_frames:
                raise RuntimeError(f"captioner {self.captioner.name} returned {len(captions)} captions for "
                                   f"{sub.num_frames} frames")
            for k in range(sub.num_frames):
                index = int(sub.source_indices[k])
                if not masks.masks[k].any():
                    row["frames_dropped"].append({"frame": index, "reason": "empty road mask"})
                    continue
                self._write_frame(ref, index, sub.frames[k], masks.masks[k], captions[k])
                kept.append(index)
        row.update(frames=sorted(kept), num_frames=len(todo) - len(row["frames_dropped"]))

    def _write_frame(self, ref: ClipRef, index: int, frame: U8, mask: Bool, cap: Caption) -> None:
        key = frame_key(ref.name, index)
        image_rel, mask_rel = f"{IMAGES_DIR}/{key}.png", f"{MASKS_DIR}/{key}.png"
        storage.write_bytes_atomic(self.url(image_rel), _png(np.ascontiguousarray(frame[:, :, ::-1]), key))
        storage.write_bytes_atomic(self.url(mask_rel), _png(mask.astype(np.uint8) * 255, f"mask {key}"))
        attrs = parse_caption(cap.prompt) or dict.fromkeys(ATTRIBUTES, UNKNOWN)
        record = {"image": image_rel, "mask": mask_rel, "prompt": cap.prompt, "prompt_2": cap.prompt_2,
                  "clip": ref.name, "source": ref.source, "frame": index, "width": int(frame.shape[1]),
                  "height": int(frame.shape[0]), "road_fraction": round(float(mask.mean()), 4), **attrs,
                  "segmenter": self.segmenter.name, "captioner": self.captioner.name, "caption_details": cap.details}
        storage.write_text_atomic(self.url(RECORDS_DIR, f"{key}.json"), json.dumps(record, default=str))

"""What a run folder holds, gathered for the report: typed views per clip, instruction and predictor
(:class:`ClipView`, :class:`ItemView`, :class:`EvalView`), thumbnails written under ``<run>/report_assets/``, and
the flat summary rows. The file names come from :class:`~lanepipe.io.layout.RunLayout` (the layout read is
described in :mod:`lanepipe.viz.report`); nothing here writes HTML.

Each clip gets a strip of three thumbnails (its first, middle and last frame: frame 0 alone hides mid-clip
defects), for the original clip and for each edit; videos are linked by paths relative to the run folder.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pandas as pd

from lanepipe.errors import LanepipeError
from lanepipe.io import storage
from lanepipe.io.layout import NULL_EDIT_SLUG, RunLayout
from lanepipe.io.video import decode, probe
from lanepipe.lanes.instructions import parse_instruction

U8 = npt.NDArray[np.uint8]

REPORT = "report.html"
ASSETS = "report_assets"
THUMB_WIDTH = 480
_SEGMENT_TINT = np.array([0, 255, 80], dtype=np.float32)
#: JSON files in ``evaluate/<clip>/<slug>/`` that are not predictor results.
_NOT_PREDICTORS = frozenset({"meta"})
VARIANTS = ("original", "edited")
_SUFFIXES = {"original": ("_original", "_orig"), "edited": ("_edited", "_edit")}


# ----------------------------------------------------------------------------------------------- model
@dataclass
class Thumb:
    """One thumbnail of a frame strip: ``src`` (URL relative to the report), the frame's index in its video
    and its time (seconds from the first frame), ``position`` (``start``/``middle``/``end``)."""

    src: str
    frame: int
    time_s: float | None
    position: str


@dataclass
class EvalView:
    """One predictor's result for one (clip, instruction)."""

    predictor: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> {name: metres}
    shift: dict[str, float] = field(default_factory=dict)
    reasoning: str | None = None
    bev: str | None = None  # relative URL of a thumbnail
    videos: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    floor: float | None = None  # the clip's null-edit shift ADE (m), the noise floor of ``shift``
    p_value: float | None = None  # paired sign-flip test of the preset's shifts vs the floors, over clips
    significant: bool | None = None  # p_value < evaluate.noise_floor.alpha
    p_pairs: int | None = None  # clips in that test


@dataclass
class ItemView:
    """One (clip, instruction)."""

    slug: str
    instruction: str | None = None
    caption: str | None = None  # the canonical caption (the painter's prompt)
    description: str | None = None  # what the edit does, in words (LaneSpec.describe)
    edit_status: str | None = None
    error: str | None = None
    qa_verdict: str | None = None
    qa_iterations: int | None = None
    qa_reasons: list[str] = field(default_factory=list)
    edited_frames: list[Thumb] = field(default_factory=list)
    videos: dict[str, str] = field(default_factory=dict)  # name -> relative URL
    evals: list[EvalView] = field(default_factory=list)


@dataclass
class ClipView:
    """One clip and everything the run holds for it."""

    clip: str
    source: str | None = None
    segment_status: str | None = None
    error: str | None = None
    num_frames: int | None = None
    fps: float | None = None
    size: str | None = None
    road_fraction: float | None = None
    frames: list[Thumb] = field(default_factory=list)  # the original clip: start, middle, end
    mask: str | None = None
    videos: dict[str, str] = field(default_factory=dict)
    items: list[ItemView] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- reading
def _clean(v: Any) -> Any:
    """pandas/numpy scalars to plain Python; NaN and NA to None."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        if pd.isna(v) is True:
            return None
    except (TypeError, ValueError):
        pass
    return v


def _read_rows(url: str) -> list[dict[str, Any]]:
    """The rows of ``results.parquet`` at ``url``."""
    df = pd.read_parquet(io.BytesIO(storage.read_bytes(url)))
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def _read_json(url: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(storage.read_text(url))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return None, f"{url}: unreadable JSON ({type(e).__name__}: {e})"
    if not isinstance(data, dict):
        return None, f"{url}: expected a JSON object, found {type(data).__name__}"
    return data, None


def _relative_files(run_url: str) -> list[str]:
    """Every file under the run as a path relative to the run folder ('/'-separated)."""
    fs, base = storage.filesystem(run_url)
    try:
        found = fs.find(base)
    except FileNotFoundError:
        return []
    base = base.rstrip("/")
    return sorted(str(f)[len(base) + 1:] for f in found if str(f).startswith(base + "/"))


def _slug(instruction: str) -> str | None:
    try:
        return str(parse_instruction(instruction).slug)
    except (LanepipeError, ValueError):
        return None


def _description(instruction: str | None) -> str | None:
    """What the instruction does, in words (a one-boundary edit says which boundary, and that the other keeps
    its markings); None if it does not parse."""
    try:
        return parse_instruction(str(instruction)).describe() if instruction else None
    except (LanepipeError, ValueError):
        return None


def as_number(v: Any) -> float | None:
    v = _clean(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _float_dict(d: Any) -> dict[str, float]:
    if not isinstance(d, dict):
        return {}
    out: dict[str, float] = {}
    for k, v in d.items():
        f = as_number(v)
        if f is not None:
            out[str(k)] = f
    return out


def split_metrics(raw: Any) -> dict[str, dict[str, float]]:
    """``{"original": {name: float}, "edited": {…}}`` from nested or flat metrics (see the module notes)."""
    out: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
    if not isinstance(raw, dict):
        return out
    for key, val in raw.items():
        k = str(key)
        if k in VARIANTS:
            out[k].update(_float_dict(val))
            continue
        f = as_number(val)
        if f is None:
            continue
        for variant, suffixes in _SUFFIXES.items():
            hit = next((s for s in suffixes if k.endswith(s)), None)
            if hit:
                out[variant][k[: -len(hit)]] = f
                break
        else:
            out["edited"][k] = f
    return out


def _reasoning_text(raw: Any) -> str | None:
    if isinstance(raw, dict):
        parts = [f"{k}: {t}" for k, v in raw.items() if (t := _reasoning_text(v))]
        return "\n".join(parts) or None
    if isinstance(raw, (list, tuple)):
        return "\n".join(str(x) for x in raw if x) or None
    return str(raw) if raw else None


# ----------------------------------------------------------------------------------------------- images
def _decode_image(url: str) -> U8 | None:
    """An RGB ``(H, W, 3) uint8`` image (grey images become 3 channels), or None if unreadable."""
    try:
        data = np.frombuffer(storage.read_bytes(url), np.uint8)
    except OSError:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        return None
    return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def strip_frames(url: str) -> list[tuple[int, float | None, U8]]:
    """The first, middle and last frame of the video at ``url`` as ``(index, seconds, RGB frame)``; fewer for
    a shorter video, ``[]`` if it does not decode. One streaming pass: only the three frames are kept."""
    try:
        info = probe(url)
        n = info.num_frames or (round(info.duration * info.fps) if info.duration and info.fps else None)
        if n is None:  # unknown length: the first frame only
            clip = decode(url, target_fps=None, max_frames=1, min_frames=1)
        else:
            # frames are kept at 0, (n-1)/2 and n-1 source frame periods
            target = 2.0 * info.fps / (n - 1) if n > 3 else None
            clip = decode(url, target_fps=target, max_frames=3, min_frames=1)
    except (LanepipeError, OSError, ValueError):
        return []
    return [(int(i), float(t), np.asarray(f, dtype=np.uint8))
            for i, t, f in zip(clip.source_indices, clip.timestamps, clip.frames, strict=True)]


_POSITIONS = ("start", "middle", "end")


def _strip(assets: Assets, frames: list[tuple[int, float | None, U8]], *parts: str) -> list[Thumb]:
    out: list[Thumb] = []
    positions = _POSITIONS if len(frames) == 3 else ("start", "end") if len(frames) == 2 else ("start",)
    for (index, t, img), pos in zip(frames, positions, strict=False):
        src = assets.put(img, *parts[:-1], f"{parts[-1]}-{index:05d}")
        if src:
            out.append(Thumb(src=src, frame=index, time_s=t, position=pos))
    return out


def _thumb(img: U8, width: int = THUMB_WIDTH) -> U8:
    h, w = img.shape[:2]
    if w <= width:
        return img
    return np.asarray(cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA),
                      dtype=np.uint8)


class Assets:
    """Writes thumbnails under ``<run>/report_assets/`` and returns their URLs relative to the report."""

    def __init__(self, run_url: str) -> None:
        self.run_url = run_url
        self.written: list[str] = []

    def put(self, img: U8, *parts: str, png: bool = False) -> str | None:
        rel = "/".join([ASSETS, *parts]) + (".png" if png else ".jpg")
        bgr = cv2.cvtColor(_thumb(img), cv2.COLOR_RGB2BGR)
        params = [] if png else [cv2.IMWRITE_JPEG_QUALITY, 85]
        ok, buf = cv2.imencode(".png" if png else ".jpg", bgr, params)
        if not ok:
            return None
        storage.write_bytes_atomic(storage.join(self.run_url, rel), buf.tobytes())
        self.written.append(rel)
        return rel


def _tinted(frame: U8 | None, mask: U8) -> U8:
    m = mask[..., 0] > 127
    if frame is None or frame.shape[:2] != m.shape:
        return mask
    f = frame.astype(np.float32)
    out = np.where(m[..., None], f * 0.6 + _SEGMENT_TINT * 0.4, f)
    return np.asarray(out, dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- collect
class RunFiles:
    """The run's file names (:class:`RunLayout`) as paths relative to the run folder, and which of them exist."""

    def __init__(self, run_url: str, files: Iterable[str]) -> None:
        root, _, run_id = run_url.rstrip("/").rpartition("/")
        self.run_url = run_url
        self.layout = RunLayout(root or ".", run_id or "run")
        self.files = set(files)

    def rel(self, url: str) -> str:
        """``url`` (a :class:`RunLayout` name) relative to the run folder."""
        prefix = self.layout.url + "/"
        if not url.startswith(prefix):
            raise ValueError(f"{url} is not under {prefix}")
        return url[len(prefix):]

    def has(self, url: str) -> bool:
        return self.rel(url) in self.files

    def url(self, layout_url: str) -> str:
        """The real URL of a :class:`RunLayout` name (under ``run_url``)."""
        return storage.join(self.run_url, self.rel(layout_url))


def report_url(run_url: str) -> str:
    """Where the report of the run at ``run_url`` goes (:attr:`RunLayout.report_url`)."""
    run = RunFiles(run_url, ())
    return run.url(run.layout.report_url)


def collect(run_url: str, assets: Assets | None) -> tuple[list[ClipView], dict[str, Any]]:
    """Everything the run holds, per clip and instruction. ``assets=None`` reads metadata only."""
    files = _relative_files(run_url)
    run = RunFiles(run_url, files)
    rows = _read_rows(run.url(run.layout.results_url)) if run.has(run.layout.results_url) else []
    manifest: dict[str, Any] = {}
    if run.has(run.layout.manifest_url):
        manifest = _read_json(run.url(run.layout.manifest_url))[0] or {}

    clips: dict[str, ClipView] = {}
    slugs: dict[str, dict[str, ItemView]] = {}

    def clip_view(name: str) -> ClipView:
        if name not in clips:
            clips[name] = ClipView(clip=name)
            slugs[name] = {}
        return clips[name]

    def item_view(clip: str, slug: str) -> ItemView:
        clip_view(clip)
        if slug not in slugs[clip]:
            slugs[clip][slug] = ItemView(slug=slug)
        return slugs[clip][slug]

    # 1. files on disk
    stage_dirs = {run.rel(run.layout.stage_dir(s)): s for s in ("segment", "edit", "evaluate")}
    for rel in files:
        parts = rel.split("/")
        stage = stage_dirs.get(parts[0])
        if stage and len(parts) >= 3:
            clip_view(parts[1])
            if stage in ("edit", "evaluate") and len(parts) >= 4:
                item_view(parts[1], parts[2])
    # 2. results rows (status, errors, verdicts)
    eval_rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        clip = r.get("clip")
        if not clip:
            continue
        cv = clip_view(str(clip))
        stage = r.get("stage")
        cv.source = cv.source or r.get("source")
        if stage == "segment":
            cv.segment_status = r.get("status")
            cv.error = r.get("error") or cv.error
            n = as_number(r.get("num_frames"))
            cv.num_frames = int(n) if n else cv.num_frames
            cv.fps = as_number(r.get("fps")) or cv.fps
            if r.get("width") and r.get("height"):
                cv.size = f"{int(r['width'])}x{int(r['height'])}"
            cv.road_fraction = as_number(r.get("road_fraction"))
            continue
        instr = r.get("instruction")
        slug = r.get("slug") or (_slug(str(instr)) if instr else None)
        if not slug:
            continue
        it = item_view(str(clip), str(slug))
        it.instruction = it.instruction or instr
        it.caption = it.caption or r.get("caption")
        if stage == "edit":
            it.edit_status = r.get("status")
            it.error = r.get("error") or it.error
            it.qa_verdict = r.get("qa_verdict") or it.qa_verdict
            n = as_number(r.get("qa_iterations"))
            it.qa_iterations = int(n) if n else it.qa_iterations
        elif stage == "evaluate" and r.get("predictor"):
            eval_rows[(str(clip), str(slug), str(r["predictor"]))] = r
        elif stage == "render" and r.get("predictor") and r.get("status") not in (None, "ok"):
            key = (str(clip), str(slug), str(r["predictor"]))
            eval_rows.setdefault(key, {})["render_error"] = r.get("error") or r.get("status")

    # 3. per-clip and per-item files
    for name, cv in clips.items():
        seg = run.layout.segment_paths(name)
        original: list[tuple[int, float | None, U8]] = []
        if run.has(seg.vp_video):
            cv.videos["original"] = run.rel(seg.vp_video)
        if run.has(seg.overlay):
            cv.videos["segmentation overlay"] = run.rel(seg.overlay)
        if assets is not None:
            if run.has(seg.vp_video):
                original = strip_frames(run.url(seg.vp_video))
            elif cv.source and not storage.is_remote(str(cv.source)) and storage.exists(str(cv.source)):
                original = strip_frames(str(cv.source))
            cv.frames = _strip(assets, original, name, "original")
            if original:  # a stable name for the first frame: Serve's page uses it as the video poster
                assets.put(original[0][2], name, "original")
            if run.has(seg.mask_png(0)):
                mask = _decode_image(run.url(seg.mask_png(0)))
                if mask is not None:
                    first = original[0][2] if original and original[0][0] == 0 else None
                    cv.mask = assets.put(_tinted(first, mask), name, "mask")
        if cv.segment_status is None and run.has(seg.meta):
            meta, _ = _read_json(run.url(seg.meta))
            if meta:
                cv.segment_status = meta.get("status")
                n = as_number(meta.get("num_frames"))
                cv.num_frames, cv.fps = (int(n) if n else None), as_number(meta.get("fps"))
                cv.road_fraction = as_number(meta.get("road_fraction"))
        for slug, it in sorted(slugs[name].items()):
            _fill_item(run, name, slug, it, eval_rows, assets)
            cv.items.append(it)
    return [clips[k] for k in sorted(clips)], manifest


def _fill_item(run: RunFiles, clip: str, slug: str, it: ItemView,
               eval_rows: dict[tuple[str, str, str], dict[str, Any]], assets: Assets | None) -> None:
    ed = run.layout.edit_paths(clip, slug)
    if run.has(ed.qa):
        qa, err = _read_json(run.url(ed.qa))
        if qa is not None:
            it.instruction = it.instruction or qa.get("instruction")
            it.caption = it.caption or qa.get("caption")
            it.qa_verdict = qa.get("final_verdict") or it.qa_verdict
            iters = qa.get("iterations") or []
            if isinstance(iters, list) and iters:
                it.qa_iterations = len(iters)
                last = iters[-1] if isinstance(iters[-1], dict) else {}
                it.qa_reasons = [str(x) for x in (last.get("reasons") or [])]
        else:
            it.error = it.error or err
    it.description = _description(it.instruction)
    if slug == NULL_EDIT_SLUG:
        _describe_null_edit(run, clip, it)
    if it.edit_status is None and run.has(ed.meta):
        it.edit_status = "ok"
    if assets is not None:
        frames = strip_frames(run.url(ed.video)) if run.has(ed.video) else []
        if not frames and run.has(ed.first_frame):
            img = _decode_image(run.url(ed.first_frame))
            frames = [] if img is None else [(0, 0.0, img)]
        it.edited_frames = _strip(assets, frames, clip, slug, "edited")
    # un-prefixed render files: the run's first predictor's (RunLayout.evaluate_paths(primary=True))
    primary = run.layout.evaluate_paths(clip, slug, "")
    for name, url in (("edited", ed.video), ("overlay", primary.overlay), ("comparison", primary.comparison)):
        if run.has(url):
            it.videos[name] = run.rel(url)
    ev_dir = run.rel(primary.dir)
    stems = {rel.rsplit("/", 1)[1][: -len(".json")] for rel in run.files
             if rel.startswith(ev_dir + "/") and rel.endswith(".json") and rel.count("/") == ev_dir.count("/") + 1}
    predictors = sorted({st for st in stems if "." not in st} - _NOT_PREDICTORS
                        | {p for (c, s, p) in eval_rows if (c, s) == (clip, slug)})

    def bev_candidates(pred: str) -> list[str]:
        """The predictor's own BEV plot: ``<predictor>.bev.png`` (and the older ``<predictor>_bev.png``)."""
        own = run.layout.evaluate_paths(clip, slug, pred, primary=False).bev
        return [own, storage.join(primary.dir, f"{pred}_bev.png")]

    unprefixed_bev = [p for p in predictors if not any(run.has(u) for u in bev_candidates(p))]
    for pred in predictors:
        paths = run.layout.evaluate_paths(clip, slug, pred, primary=False)
        e = EvalView(predictor=pred)
        row = eval_rows.get((clip, slug, pred)) or {}
        if row.get("status") not in (None, "ok"):
            e.error = str(row.get("error") or row.get("status"))
        if row.get("render_error"):
            e.error = "\n".join(x for x in (e.error, f"render: {row['render_error']}") if x)
        data: dict[str, Any] = {}
        if run.has(paths.evaluation):
            loaded, err = _read_json(run.url(paths.evaluation))
            if loaded is None:
                e.error = "\n".join(x for x in (e.error, err) if x)
            data = loaded or {}
        e.metrics = split_metrics(data.get("metrics"))
        if not any(e.metrics.values()):  # fall back to the results row
            e.metrics = split_metrics({k: v for k, v in row.items() if k.startswith(("min_ade", "min_fde"))})
        e.shift = _float_dict(data.get("shift"))
        if not e.shift:
            e.shift = _float_dict({"ade": row.get("shift_ade"), "max_lateral_offset": row.get("shift_max_lateral")})
        e.reasoning = _reasoning_text(data.get("reasoning"))
        _fill_floor(e, row, data, slug)
        bevs = bev_candidates(pred)
        if unprefixed_bev == [pred]:
            bevs.append(primary.bev)
        if assets is not None:
            for bev_url in bevs:
                if run.has(bev_url):
                    img = _decode_image(run.url(bev_url))
                    if img is not None:
                        e.bev = assets.put(img, clip, slug, f"{pred}_bev", png=True)
                    break
        for name, url in (("overlay", paths.overlay), ("comparison", paths.comparison)):
            if run.has(url):
                e.videos[name] = run.rel(url)
        it.evals.append(e)


def _fill_floor(e: EvalView, row: dict[str, Any], data: dict[str, Any], slug: str) -> None:
    """The noise floor and the permutation test of one evaluation (results row, else its ``floor`` record)."""
    if slug == NULL_EDIT_SLUG:
        e.floor = e.shift.get("ade")
        return
    raw = data.get("floor")
    floor: dict[str, Any] = raw if isinstance(raw, dict) else {}
    e.floor = as_number(row.get("floor_ade_m"))
    if e.floor is None:
        e.floor = as_number(_float_dict(floor.get("shift")).get("ade"))
    e.p_value = as_number(row.get("p_value"))
    sig = _clean(row.get("significant"))
    e.significant = bool(sig) if isinstance(sig, (bool, np.bool_)) else None
    n = as_number(row.get("p_pairs"))
    e.p_pairs = int(n) if n is not None else None


def _describe_null_edit(run: RunFiles, clip: str, it: ItemView) -> None:
    """Label the ``null-edit`` folder of a clip: what its null edit did, from a predictor's floor record."""
    it.instruction = "null edit (noise floor)"
    d = run.layout.evaluate_paths(clip, NULL_EDIT_SLUG, "")
    docs = sorted(rel for rel in run.files if rel.startswith(run.rel(d.dir) + "/") and rel.endswith(".json"))
    doc = (_read_json(storage.join(run.run_url, docs[0]))[0] or {}) if docs else {}
    painted = [str(x) for x in (doc.get("instructions") or [])]
    what = ("the original decoded, re-encoded by the edit stage's encoder and decoded, nothing painted"
            if doc.get("null_edit", "reencode") == "reencode" else
            "the original with its own markings repainted (" + (", ".join(painted) or "none seen") + ")")
    it.description = f"{what}; its shift is the noise floor of this clip's edits"
    for name, file in (("null edit", "edited.mp4"), ("re-encoded original", "original.mp4")):
        url = storage.join(d.dir, file)
        if run.has(url):
            it.videos[name] = run.rel(url)


def significance_rows(clips: Iterable[ClipView]) -> list[dict[str, Any]]:
    """One row per (instruction, predictor): clips, mean shift and mean floor (m), the permutation test's p-value
    and whether it is significant (the evaluate rows of a group share the test)."""
    groups: dict[tuple[str, str], list[EvalView]] = {}
    for cv in clips:
        for it in cv.items:
            if it.slug == NULL_EDIT_SLUG:
                continue
            for e in it.evals:
                if e.predictor and e.shift.get("ade") is not None:
                    groups.setdefault((str(it.instruction or it.slug), e.predictor), []).append(e)
    out: list[dict[str, Any]] = []
    for (instr, pred), evals in sorted(groups.items()):
        floors = [e.floor for e in evals if e.floor is not None]
        tested = [e for e in evals if e.p_value is not None]
        first = tested[0] if tested else None
        out.append({"instruction": instr, "predictor": pred, "clips": len(evals),
                    "mean_shift_ade": float(np.mean([e.shift["ade"] for e in evals])),
                    "mean_floor_ade": float(np.mean(floors)) if floors else None,
                    "p_value": first.p_value if first else None, "pairs": first.p_pairs if first else None,
                    "significant": None if first is None or first.significant is None else
                    ("yes" if first.significant else "no")})
    return out


# ----------------------------------------------------------------------------------------------- table
def _metric(metrics: dict[str, float], *names: str) -> float | None:
    low = {k.lower().replace("_", ""): v for k, v in metrics.items()}
    for n in names:
        if n.lower() in low:
            return low[n.lower()]
    return None


def table_rows(clips: Iterable[ClipView]) -> list[dict[str, Any]]:
    """One flat row per (clip, instruction, predictor); see :func:`lanepipe.viz.report.summary_table`."""
    out: list[dict[str, Any]] = []
    for cv in clips:
        base = {"clip": cv.clip, "segment": cv.segment_status or "-"}
        if not cv.items:
            out.append(base | {"instruction": None, "edit": None, "qa": None, "predictor": None,
                               "minADE_orig": None, "minADE_edit": None, "minFDE_orig": None, "minFDE_edit": None,
                               "shift_ade": None, "max_lateral_offset": None, "floor_ade": None, "p_value": None,
                               "error": _first_line(cv.error)})
            continue
        for it in cv.items:
            item = base | {"instruction": it.instruction or it.slug, "edit": it.edit_status, "qa": it.qa_verdict}
            evals = it.evals or [EvalView(predictor="")]
            for e in evals:
                out.append(item | {
                    "predictor": e.predictor or None,
                    "minADE_orig": _metric(e.metrics.get("original", {}), "minade", "ade"),
                    "minADE_edit": _metric(e.metrics.get("edited", {}), "minade", "ade"),
                    "minFDE_orig": _metric(e.metrics.get("original", {}), "minfde", "fde"),
                    "minFDE_edit": _metric(e.metrics.get("edited", {}), "minfde", "fde"),
                    "shift_ade": e.shift.get("ade"),
                    "max_lateral_offset": e.shift.get("max_lateral_offset"),
                    "floor_ade": e.floor, "p_value": e.p_value,
                    "error": _first_line(e.error or it.error or cv.error),
                })
    return out


def _first_line(s: str | None) -> str | None:
    return s.strip().splitlines()[0] if s and s.strip() else None

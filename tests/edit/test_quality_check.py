"""benchmarks/quality_check.py: cached / CFG-truncated CogVideoX windows against the stock window — the same code
on the tiny random models (CPU wiring) and, marked ``weights``, on the real checkpoint."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from lanepipe.edit.config import GenerativeConfig
from lanepipe.sample import render_sample
from lanepipe.testing import load_script


def _qc() -> Any:
    return load_script("benchmarks/quality_check.py", "quality_check")


def test_psnr_known_answer() -> None:
    qc = _qc()
    a = np.zeros((1, 2, 2, 3), np.uint8)
    b = a.copy()
    assert qc.psnr(a, b) == math.inf
    b[0, 0, 0] = 255  # one pixel of four off by 255 in all channels: MSE = 255² / 4 → 10·log10(4) dB
    assert qc.psnr(a, b) == pytest.approx(10 * math.log10(4))
    road = np.zeros((1, 2, 2), bool)
    road[0, 1] = True  # the differing pixel is outside the road
    assert qc.psnr(a, b, road) == math.inf
    with pytest.raises(ValueError, match="one shape"):
        qc.psnr(a, b[:, :1])


def test_quality_check_wiring_on_tiny_models() -> None:
    qc = _qc()
    s = render_sample(num_frames=9, width=96, height=64)
    base = GenerativeConfig(preset="tiny-random", seed=3, video_steps=8)
    res = qc.run(base, s.frames, s.road_masks, ["none", "pab", "cfg0.5"])
    assert res["none"]["psnr_db"] == math.inf  # same inputs, same seed: the comparison sees no difference
    for lever in ("pab", "cfg0.5"):
        assert math.isfinite(res[lever]["psnr_db"]) and res[lever]["psnr_db"] > 0
        assert math.isfinite(res[lever]["psnr_road_db"])
    assert res["pab"]["accel"]["cache"]["kind"] == "pab"
    assert res["cfg0.5"]["accel"]["cfg_truncation"] == 0.5
    with pytest.raises(ValueError, match="unknown"):
        qc.run(base, s.frames, s.road_masks, ["first_block"])


@pytest.mark.weights
@pytest.mark.skipif(not os.environ.get("LANEPIPE_WEIGHTS_DIR"), reason="needs LANEPIPE_WEIGHTS_DIR with CogVideoX")
def test_quality_check_on_real_checkpoint(tmp_path: Path) -> None:
    qc = _qc()
    model = Path(os.environ["LANEPIPE_WEIGHTS_DIR"]) / qc.COGVIDEOX_FOLDER
    if not (model / "model_index.json").is_file():
        pytest.skip(f"{model} not present")
    res = qc.main(["--levers", "none,pab", "--out", str(tmp_path / "q.json")])
    assert res["none"]["psnr_db"] == math.inf
    # a sanity floor, not a quality target: a cache that wrecks the picture (wrong layers, stale state) is far below
    assert res["pab"]["psnr_db"] > 20
    assert (tmp_path / "q.json").is_file()

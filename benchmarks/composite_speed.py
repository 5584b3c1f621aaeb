"""Compositing cost of the generative painter: 49 model-size frames (720x480) back into a 1280x720 clip.

Times ``GenerativePainter._to_clip`` (resize + inner feather + blend) per clip, and the blend itself against the
plain numpy float32 formula it replaced, in the same run. CPU only; no models.

    python benchmarks/composite_speed.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine
from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative import GenerativePainter
from lanepipe.edit.generative import masks as g


def numpy_blend(generated: np.ndarray, original: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    mix = np.rint(a * generated.astype(np.float32) + (1.0 - a) * original.astype(np.float32))
    out = np.clip(mix, 0, 255).astype(np.uint8)
    out[alpha <= 0.0] = original[alpha <= 0.0]
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    t_frames = 49
    orig = rng.integers(0, 255, (t_frames, 720, 1280, 3), dtype=np.uint8)
    gen = rng.integers(0, 255, (t_frames, 480, 720, 3), dtype=np.uint8)
    road = np.zeros((t_frames, 720, 1280), bool)
    road[:, 400:, 200:1100] = True
    painter = GenerativePainter(GenerativeConfig(preset="tiny-random", width=720, height=480))
    alpha = g.inner_feather(road[0], 8 * 1280 / 720)
    times: dict[str, float] = {}
    for name, fn in (("to_clip", lambda k: painter._to_clip(gen[k], orig[k], road[k])),
                     ("blend_cv2", lambda k: g.blend(orig[k], orig[(k + 1) % t_frames], alpha)),
                     ("blend_numpy", lambda k: numpy_blend(orig[k], orig[(k + 1) % t_frames], alpha))):
        t = time.perf_counter()
        for k in range(t_frames):
            fn(k)
        times[name] = time.perf_counter() - t
    print(machine())
    print(f"composite 49 frames into 1280x720 (_to_clip): {times['to_clip']:.2f} s")
    print(f"blend 49 frames: cv2.blendLinear {times['blend_cv2']:.2f} s, numpy float32 {times['blend_numpy']:.2f} s "
          f"(ratio {times['blend_cv2'] / times['blend_numpy']:.2f})")


if __name__ == "__main__":
    main()

"""The GPU benchmark's headline file (issue 15): values never carried across kinds of GPU."""

from __future__ import annotations

from typing import Any

from lanepipe.testing import load_script


def _bench() -> Any:
    return load_script("benchmarks/gpu_generative.py", "gpu_generative_bench")


def test_a_run_keeps_earlier_figures_of_the_same_gpu_only() -> None:
    merged = _bench().merged_headline
    h200 = {"edit_clip_s": 79.82, "cogvideox_step_s": None, "sam2_150_frames_s": 6.3, "machine": "NVIDIA H200",
            "date": "2026-12-05", "commit": "a"}
    measured = {"edit_clip_s": None, "cogvideox_step_s": 1.82, "sam2_150_frames_s": None}
    same = merged(h200, measured, "NVIDIA H200", "2026-12-06", "b")
    assert same == {"edit_clip_s": 79.82, "cogvideox_step_s": 1.82, "sam2_150_frames_s": 6.3,
                    "machine": "NVIDIA H200", "date": "2026-12-06", "commit": "b"}
    other = merged(h200, measured, "NVIDIA H100 80GB HBM3", "2026-12-06", "b")
    assert other["edit_clip_s"] is None and other["sam2_150_frames_s"] is None and other["cogvideox_step_s"] == 1.82
    assert merged({}, measured, "NVIDIA H200", "d", "c")["machine"] == "NVIDIA H200"

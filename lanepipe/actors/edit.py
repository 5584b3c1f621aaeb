"""Ray Data actor for the edit stage: loads the painter and verifier once per worker.

The painter is chosen by ``edit.backend`` (procedural, or flux_cogvideox whose pipelines load on first use in
this worker) and the verifier by ``verify.backend`` (lane_detector, or the qwen_vl judge loaded here). GPUs come
from ``edit.resources.num_gpus``; which GPU each model uses comes from ``edit.generative.flux_device`` /
``video_device`` and ``verify.qwen_vl.device`` (Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it gave the actor).
"""

from __future__ import annotations

from lanepipe.actors.base import StageActor


class EditActor(StageActor):
    """Batch in: segment rows; out: the segment rows passed through plus one edit row per instruction."""

    stage_name = "edit"

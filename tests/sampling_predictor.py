"""A sampling user predictor plugged in by import path: its settings carry a ``seed`` (noise-floor tests)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from lanepipe.types import FUTURE_STEPS, Prediction, PredictorInput


class SamplingConfig(BaseModel):
    seed: int = 7
    num_samples: int = 4


class Sampling:
    """Drives straight ahead at 10 m/s with a lateral drift drawn from ``seed`` (the frames do not matter)."""

    name = "sampling"
    config_class = SamplingConfig

    def __init__(self, cfg: SamplingConfig | None = None) -> None:
        self.cfg = cfg or SamplingConfig()

    def predict(self, inp: PredictorInput) -> Prediction:
        rng = np.random.default_rng(self.cfg.seed)
        t = 0.1 * np.arange(1, FUTURE_STEPS + 1)
        drift = rng.normal(0.0, 0.1, size=(self.cfg.num_samples, 1))
        traj = np.zeros((self.cfg.num_samples, FUTURE_STEPS, 3), np.float32)
        traj[..., 0] = 10.0 * t
        traj[..., 1] = drift * t
        return Prediction(trajectories=traj, reasoning=[f"seed {self.cfg.seed}"], meta={"seed": self.cfg.seed})

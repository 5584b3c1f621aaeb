"""Camera models and road-plane geometry (pure numpy): pinhole and f-theta cameras, ground homography and
vanishing point, ego frames and quaternions. Imports nothing above :mod:`lanepipe.types`."""

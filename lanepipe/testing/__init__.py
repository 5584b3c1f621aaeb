"""Builders for tests and wiring checks: small, seeded, written from scratch (no downloads, no weights).

- :mod:`~lanepipe.testing.paiav`: a tiny PhysicalAI-AV copy (:func:`~lanepipe.testing.paiav.write_fixture`).
- :mod:`~lanepipe.testing.recolour`: a colour-only lane edit (paint recoloured in place,
  :func:`~lanepipe.testing.recolour.recolour_paint`) for measuring colour invariance.
"""

"""Builders for tests and wiring checks: small, seeded, written from scratch (no downloads, no weights).

- :mod:`~lanepipe.testing.paiav`: a tiny PhysicalAI-AV copy (:func:`~lanepipe.testing.paiav.write_fixture`).
"""

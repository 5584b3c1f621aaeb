"""I/O: video (PyAV), storage (fsspec, atomic writes), run and VideoPainter layouts."""

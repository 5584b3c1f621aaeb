"""Training: LoRA fine-tuning of FLUX.1 Fill on lane-marking datasets.

:mod:`~lanepipe.train.config` (settings, step plan), :mod:`~lanepipe.train.data` (rows and images),
:mod:`~lanepipe.train.fill` (FLUX Fill objective, LoRA, optimiser steps), :mod:`~lanepipe.train.checkpoints`
(model loading, LoRA file, resumable checkpoints) and :mod:`~lanepipe.train.lora` (the Ray Train loop,
:func:`~lanepipe.train.lora.train_lora`).
"""

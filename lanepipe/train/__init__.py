"""Training: LoRA fine-tuning of FLUX.1 Fill on lane-marking datasets (:mod:`lanepipe.train.lora`)."""

"""Entry point for ``ray job submit``: LoRA training of FLUX.1 Fill on the cluster the job runs in.

    ray job submit --working-dir . -- python jobs/train_lora.py --dataset gs://bucket/datasets/lanes \
        --output gs://bucket/loras/lanes-v1 --set num_workers=4 --set gradient_checkpointing=true

It joins the job's cluster (``--address auto``) and runs the same trainer as ``lanepipe train``; re-submitting
with the same ``--output`` resumes from the last checkpoint there.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lanepipe.config import apply_overrides, read_yaml_mapping
from lanepipe.errors import LanepipeError
from lanepipe.train.lora import parse_config, train_lora


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="dataset folder or URL (train.csv, images/, masks/)")
    ap.add_argument("--output", required=True, help="folder or URL for the adapter, summary and checkpoints")
    ap.add_argument("-c", "--config", help="YAML file of TrainConfig fields")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="TrainConfig override key=value")
    ap.add_argument("--address", default="auto", help="Ray address (auto inside a submitted job)")
    args = ap.parse_args(argv)
    try:
        data: dict[str, Any] = read_yaml_mapping(args.config) if args.config else {}
        data["output"] = args.output
        cfg = parse_config(apply_overrides(data, args.sets))
        s = train_lora(args.dataset, cfg, address=args.address)
    except (LanepipeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"trained {s.steps_run} step(s) to step {s.steps} (resumed at {s.start_step}); final loss {s.final_loss}; "
          f"{s.seconds:.1f} s → {s.lora_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

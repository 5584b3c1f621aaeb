"""Entry point for ``ray job submit``: LoRA training of FLUX.1 Fill on the cluster the job runs in.

    ray job submit --working-dir . -- python jobs/train_lora.py --dataset gs://bucket/datasets/lanes \
        --output gs://bucket/loras/lanes-v1 --set num_workers=4 --set gradient_checkpointing=true

It is ``lanepipe train`` (same flags, same code: :func:`lanepipe.cli.run_cli`) joining the job's cluster
(``--address auto`` unless given); re-submitting with the same ``--output`` resumes from the last checkpoint there.
"""

from __future__ import annotations

import sys

from lanepipe.cli import run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(["train", "--address", "auto", *(sys.argv[1:] if argv is None else argv)],
                   messages_to_stdout=True)


if __name__ == "__main__":
    sys.exit(main())

"""Entry point for ``ray job submit``: a segment sweep on the cluster the job runs in.

    ray job submit --working-dir . -- python jobs/sweep.py -c jobs/configs/segment_sweep.yaml \
        --set input.paths='["gs://bucket/clips/*.mp4"]' --set output=gs://bucket/runs

It is ``lanepipe run`` (same flags, same code: :func:`lanepipe.cli.run_cli`) joining the job's cluster
(``--address auto`` unless given).
"""

from __future__ import annotations

import sys

from lanepipe.cli import run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(["run", "--address", "auto", *(sys.argv[1:] if argv is None else argv)],
                   messages_to_stdout=True)


if __name__ == "__main__":
    sys.exit(main())

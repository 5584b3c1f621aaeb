"""Entry point for ``ray job submit``: a segment sweep on the cluster the job runs in.

    ray job submit --working-dir . -- python jobs/sweep.py -c jobs/configs/segment_sweep.yaml \
        --set input.paths='["gs://bucket/clips/*.mp4"]' --set output=gs://bucket/runs

It joins the job's cluster (``ray.address=auto``) and runs the same pipeline as ``lanepipe run``.
"""

from __future__ import annotations

import argparse
import sys

from lanepipe import pipeline
from lanepipe.config import load_config
from lanepipe.errors import LanepipeError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", help="YAML run config")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="dotted override a.b=c")
    ap.add_argument("--address", default="auto", help="Ray address (auto inside a submitted job)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, [f"ray.address={args.address}", *args.sets])
        summary = pipeline.run(cfg)
    except LanepipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = len(summary.failed)
    print(f"run {summary.run_id}: {len(summary.rows) - failed} ok, {failed} failed, {summary.skipped} skipped → "
          f"{summary.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

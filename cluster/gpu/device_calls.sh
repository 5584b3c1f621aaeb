#!/usr/bin/env bash
# The GPU figures of issues 14, 15 and 16 as three device calls made back to back on one warm machine (a machine
# goes back 30 s after a call; files under /root stay while it is warm). Wheels: `bash cluster/gpu/pack_wheels.sh`
# here first (.whl/part1 = ray, .whl/part2 = av, diffusers, pydantic, sam2, ..., .whl/part3 = grpcio, .whl/part4 =
# the rest of ray[default,serve,train]'s extras: fastapi, starlette, uvicorn, opencensus, opentelemetry, py-spy, ...)
# and the clips in .device_data/.
#
#   A  carry [".whl/part2", ".whl/part3", ".device_data"]: install them, then (issue 15)
#        gpu_generative.py --parts sam2            (SAM2.1 hiera-large, 150 frames: bf16 with frames encoded 1, 8 and
#                                                   16 at a time, fp32; BENCH_SAM2_VARIANTS)
#   B  carry [".whl/part1", ".whl/part4"] (ray and its extras): install them; the GPU install trial (lanepipe
#        installed with pip, every requirement of lanepipe[gpu] checked); gpu_pipeline.py (issue 14 items 4 and 7:
#        Ray metrics scraped; a partial report if the call's time runs out); serve_resident.py --size full (item 5)
#   C  carry []: on an H200, one clip end to end with today's defaults (the headline) and with TaylorSeer on
#        (gpu_generative.py --parts edit / edit_cache); on a smaller card edit_overlap.py --size full and the levers
# Run on 2026-12-05 (A: branch, attention kernels, levers in part; B: install trial, pipeline timed out; C: Serve
# failed on the image's old grpcio, edit end to end): BENCHMARKS.md, "GPU session 2026-12-05". Again on an H100 the
# same day (A: SAM2 fp32/bf16, every lever; B: install 51/52, the pipeline's first pass, 5 of 8 edits; C not reached):
# "GPU session 2026-12-05, second lease". On an H200 the same day (A with STEPS=compile_cache; B: the pipeline
# complete; C: Serve hung on GPU shares that could not all be reserved, fixed since; overlap): "third lease".
#
# Each step runs under its own `timeout`, so one failure never loses the others; every log and JSON goes to
# /root/res/<step>/ and comes back as $OUT/res-<call>.tgz (a call returns at most 8 files).
#     bash cluster/gpu/device_calls.sh A      # on the device machine, from the repository root
set -uo pipefail
call=${1:?call A, B, C or D}
: "${OUT:?set by the device tool}"
RES=/root/res
mkdir -p "$RES" /root/site /root/clips /root/wheels
export PYTHONPATH=/root/site:$PWD PYTHONUNBUFFERED=1 LANEPIPE_DATA_DIR=/root/clips RAY_USAGE_STATS_ENABLED=0
t_end=$(( $(date +%s) + ${CALL_BUDGET_S:-550} ))

step() {  # step NAME LIMIT_S CMD...: run CMD with its log in $RES/NAME.log, within the call's budget
  local name=$1 limit=$2 left
  shift 2
  left=$(( t_end - $(date +%s) - 15 ))
  (( limit > left )) && limit=$left
  if (( limit < 30 )); then echo "=== $name skipped (${left}s left)"; return; fi
  echo "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" >"$RES/$name.log" 2>&1
  echo "=== $name rc=$? in $(( SECONDS - t0 ))s"
  grep -v "^\s*$" "$RES/$name.log" | tail -n "${TAIL:-6}" | cut -c1-300
}

install() {  # wheels into /root/site (kept for later calls), copies in /root/wheels (the install trial's index)
  cp "$@" /root/wheels/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/site "$@" \
    2>&1 | grep -v "WARNING: Target directory" | tail -n 3
}

pack() {
  cp benchmarks/results/headline.json "$RES/headline-$call.json" 2>/dev/null
  nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv >"$RES/nvidia-smi-$call.txt" 2>&1
  tar czf "$OUT/res-$call.tgz" -C "$RES" --exclude='*.mp4' --exclude='*.png' --exclude='*.npz' . && ls -la "$OUT"
}

run_step() {  # the steps a call may run, by name
  case $1 in
    sam2) step sam2 280 python3 benchmarks/gpu_generative.py --parts sam2 --out "$RES/sam2" ;;
    # the kernel table was taken on 2026-12-05 (--profile-top 0 skips it); 10 steps keep every cache in the call
    levers) BENCH_LEVER_STEPS=${BENCH_LEVER_STEPS:-10} step levers 300 \
      python3 benchmarks/gpu_generative.py --parts levers --profile-top 0 --out "$RES/levers" ;;
    compile_cache) step compile_cache 400 python3 benchmarks/gpu_generative.py --parts compile_cache \
      --out "$RES/compile_cache" ;;
    install)  # the GPU install trial: lanepipe itself installed by pip (no index: nothing can be fetched there),
      # then every requirement of lanepipe[gpu] checked against what is importable (image + carried wheels)
      step install 120 bash -c "python3 -m pip install --no-index --no-deps --no-build-isolation --target /root/lp . \
        && PYTHONPATH=/root/lp:/root/site python3 cluster/gpu/check_requirements.py gpu" ;;
    pipeline) TAIL=16 step pipeline 600 python3 benchmarks/gpu_pipeline.py --steps "${PIPELINE_STEPS:-10}" \
      --out "$RES/pipeline"
      rm -rf "$RES/pipeline/runs"/*/clips 2>/dev/null ;;
    # issue 15's clip end to end (the headline), then with TaylorSeer (off by default; bf16 factors and parking on
    # a card under 100 GiB, BENCH_EDIT_CACHE_DTYPE to choose): one process each, ~4 min
    edit) step edit 330 python3 benchmarks/gpu_generative.py --parts edit --out "$RES/edit" ;;
    edit_cache) step edit_cache 330 python3 benchmarks/gpu_generative.py --parts edit_cache --out "$RES/edit_cache" ;;
    serve) TAIL=14 step serve 300 python3 benchmarks/serve_resident.py --size full ;;
    overlap) step overlap 600 python3 benchmarks/edit_overlap.py --size full --clips "${OVERLAP_CLIPS:-2}" \
      --out "$RES/overlap" ;;
    *) echo "unknown step $1"; exit 2 ;;
  esac
}

# STEPS="..." replaces a call's steps (its installs stay): e.g. STEPS=compile_cache for call A on a later lease
case $call in
A)
  install .whl/part2/*.whl .whl/part3/*.whl
  cp .device_data/*.mp4 /root/clips/
  touch /root/clips/README.md  # benchmarks check LANEPIPE_DATA_DIR is the shared data folder by its README
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, diffusers, av, sam2; print(torch.__version__, diffusers.__version__, av.__version__)"
  export BENCH_SAM2_VARIANTS=${BENCH_SAM2_VARIANTS:-bfloat16+b1,bfloat16+b8,bfloat16+b16,float32+b1}
  default="sam2" ;;
B) install .whl/part1/*.whl .whl/part4/*.whl; default="install pipeline serve" ;;
C)  # the clip end to end peaked at 79.1 GiB with every model resident: an H200's (> 100 GB) figure only
  # (lanepipe.edit.generative.published.PARK_BELOW_GIB: 100 GiB)
  if (( $(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n1) > 100000 )); then
    default="edit edit_cache"
  else
    default="overlap levers"
  fi ;;
D) install .whl/part2/*.whl; default="compile_cache" ;;  # a short call on a fresh machine: carry [".whl/part2"]
*) echo "unknown call $call"; exit 2 ;;
esac
for s in ${STEPS:-$default}; do run_step "$s"; done
pack

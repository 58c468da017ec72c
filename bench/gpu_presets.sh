#!/usr/bin/env bash
# Train every lesson's `gpu` preset on one GPU at once and collect metrics, sample grids and logs in $1.
# Usage: bench/gpu_presets.sh OUT_DIR [TIME_LIMIT_S]   (each run stops, checkpointed, at TIME_LIMIT_S of training)
set -u
out=${1:?usage: bench/gpu_presets.sh OUT_DIR [TIME_LIMIT_S]}
limit=${2:-330}
py=${PYTHON:-python3}
work=$(mktemp -d)
mkdir -p "$out"
nvidia-smi -L 2>/dev/null | tee "$out/all.log"
"$py" -m course_utils train mnist --preset gpu --out "$work/mnist" --time-limit "$limit" >"$work/mnist.log" 2>&1 &
"$py" -m course_utils train sprites --preset gpu --out "$work/sprites" --time-limit "$limit" >"$work/sprites.log" 2>&1 &
"$py" -m course_utils train emoji32 --preset gpu --out "$work/emoji32" --time-limit "$limit" >"$work/emoji32.log" 2>&1 &
wait
"$py" bench/bench_lesson4.py throughput --preset gpu --rounds 10 >"$work/throughput.log" 2>&1
for run in mnist sprites emoji32; do
  cp "$work/$run/metrics.json" "$out/$run-metrics.json" 2>/dev/null
  cp "$work/$run/samples.png" "$out/$run-samples.png" 2>/dev/null
  { echo "=== $run"; grep -v "it/s\]" "$work/$run.log" | tail -60; } >>"$out/all.log"
done
cp "$work/emoji32/denoising.gif" "$out/emoji32-denoising.gif" 2>/dev/null
{ echo "=== throughput"; cat "$work/throughput.log"; } >>"$out/all.log"

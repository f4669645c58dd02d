#!/usr/bin/env bash
# The 20-epoch comparison of docs/results.md, started or resumed in the background at low priority:
#   bash bench/results_20_epochs.sh [DIR]            start it, or resume it where it stopped
#   bash bench/results_20_epochs.sh [DIR] --so-far   where it stands (trains nothing), in DIR/so-far,
#                                                    read by this checkout's code
#   bash bench/results_20_epochs.sh [DIR] --stop     stop it: each run in training checkpoints first
# DIR (default ../answer-20ep) holds the frozen code (a worktree at CODE below), its virtual environment,
# its store (DIR/work), its cache (data and the metric classifier) and its log (DIR/log.txt). A finished
# run is never trained again; the run in training resumes from its last checkpoint (docs/runs.md). After
# the last look the same command writes the report to DIR/work/results, training nothing.
set -euo pipefail
CODE=a48ed76  # the code the comparison runs: identities and the design must not change under it
repo=$(cd "$(dirname "$0")/.." && pwd)
place="" action=""
for a in "$@"; do case "$a" in --so-far|--stop) action=$a ;; -*) echo "unknown option $a" >&2; exit 2 ;; *) place=$a ;; esac; done
dir=$(realpath -m "${place:-$repo/../answer-20ep}")
args=(compare smoothing tanh batchnorm batchnorm-train latent --sweep model.latent_dim=32,256
      --until-decided --seeds 3 --max-seeds 6 --budget 36 --epochs 20 --margin 20
      --set eval.every_epochs=2 --set eval.interim_images=2000 --workers 2 --out results)

[ -d "$dir/code" ] || git -C "$repo" worktree add --detach "$dir/code" "$CODE"
[ -x "$dir/venv/bin/python" ] || { python3.11 -m venv "$dir/venv" && "$dir/venv/bin/pip" install -q -e "$dir/code"; }
mkdir -p "$dir/work" "$dir/cache"
export HARNESS_CACHE="$dir/cache"
cd "$dir/work"

if [ "$action" = --so-far ]; then  # read with this checkout's harness code, which only reads the store
  # (its identities stay the comparison's: tests/test_identity.py), for the page's newer parts (ETA,
  # dashes); the experiments' files are still the frozen folder's, which its installation adds
  PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$dir/venv/bin/python" -m harness "${args[@]}" --out "$dir" \
    --so-far
fi
running=$(pgrep -o -f "harness ${args[*]:0:3}" || true)  # the oldest: the command, not its workers
if [ "$action" = --stop ]; then
  [ -n "$running" ] || { echo "the comparison is not running" >&2; exit 1; }
  kill -TERM "$running"  # it passes the signal to its workers; each checkpoints its run and exits
  while pgrep -f "harness ${args[*]:0:3}" >/dev/null; do sleep 2; done
  echo "stopped; the same command resumes it"
  exit 0
fi
if [ -n "$running" ]; then
  echo "the comparison is already running (pgrep -f 'harness compare smoothing'); its log: $dir/log.txt" >&2
  exit 1
fi
# the 60,000 digits, fetched once into the cache: without them the runs would fall back to mnist-5k
"$dir/venv/bin/python" -m harness data | tee -a "$dir/log.txt" | grep "^mnist resolves to: mnist$" >/dev/null \
  || { echo "MNIST's 60,000 digits are not to be had here (harness data says why); not started" >&2; exit 1; }
echo "=== start $(date -u) code $CODE" >> "$dir/log.txt"
for log in results/worker-*.log; do  # CODE starts each worker's log anew: keep what the last start said
  if [ -f "$log" ]; then cat "$log" >> "$dir/$(basename "$log" .log).history.log"; fi
done
# setsid: it outlives this terminal; its own autogroup at niceness 19 yields the cores to other work,
# which nice alone does not against another terminal's autogroup (Linux)
setsid sh -c 'echo 19 > /proc/self/autogroup 2>/dev/null; exec nice -n 19 "$@"' sh \
  "$dir/venv/bin/python" -m harness "${args[@]}" >> "$dir/log.txt" 2>&1 < /dev/null &
echo "started: log $dir/log.txt, workers' logs $dir/work/results/worker-*.log; stop it with" \
     "kill -TERM (it checkpoints); where it stands: bash $0 $dir --so-far"

#!/usr/bin/env bash
# A/A runs on one GPU: the same `sdshape run` of SD 1.5 again and again, each in a fresh process, under
# eager and under compile:reduce-overhead, with nothing changed between runs. What the run-to-run noise
# of a dedicated GPU is, for the regression-tracking work (compare --store, history; issue 28).
#
# Made for the device tool's one-command lease: it installs what the machine lacks, then starts runs
# until AA_EAGER_N and AA_COMPILE_N have finished or the next one would end past AA_DEADLINE_S seconds
# after the script started; the tarball under $OUT is rewritten after every run, so whatever finished
# comes back even if the command is cut off.
#
#   here, once:   bash ../shared/device/fetch-wheels.sh --no-ort           # .whl/ (ignored by git)
#                 rm -rf .proj && mkdir .proj && git archive HEAD | tar -x -C .proj \
#                   && git rev-parse HEAD > .proj/COMMIT                   # the committed tree, not edits
#   device:       run(command="bash bench/gpu_aa_runs.sh", carry=[".whl", ".proj"], timeout_s=560)
#   a second batch on the same warm machine (its Inductor cache kept), numbered on:
#                 AA_COLD_DONE=1 AA_EAGER_FROM=11 AA_COMPILE_FROM=2 AA_EAGER_UNTIL_S=0 ... bash bench/gpu_aa_runs.sh
#   CPU check:    AA_INSTALL=0 AA_PY=.venv/bin/python AA_ARGS="--shape tiny --device cpu --steps 2 \
#                   --rounds 5 --warmup 1 --no-parity" AA_DEADLINE_S=60 OUT=/tmp/aa-test bash bench/gpu_aa_runs.sh
#
# Order: eager runs until AA_EAGER_N are done or AA_EAGER_UNTIL_S seconds have passed, then the first
# compile run (cold Inductor cache: it compiles), then eager and compile alternately. Files:
# $OUT/aa-runs.tgz (aa/eager-NN.json|log, aa/compile-reduce-overhead-NN.json|log, aa/environment.txt,
# aa/progress.log) and $OUT/progress.log. Used for results/h200-aa-2026-12-04/.
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/aa-out}
PY=${AA_PY:-python3}
ARGS=${AA_ARGS:---shape sd15 --device cuda --precision fp16 --resolution 512 --steps 10 --rounds 10 --warmup 2 --no-parity --no-profile}
EAGER_N=${AA_EAGER_N:-20}
COMPILE_N=${AA_COMPILE_N:-20}
EAGER_UNTIL=${AA_EAGER_UNTIL_S:-240} # eager runs alone until AA_EAGER_N are done or this many seconds passed
DEADLINE=${AA_DEADLINE_S:-480}       # no run is started that would be expected to end after this
HARD=${AA_HARD_S:-$((DEADLINE + 45))} # every run is killed by then, whatever was expected
EST_EAGER=${AA_EST_EAGER_S:-60}       # expected seconds of a run before one has been timed
EST_COLD=${AA_EST_COLD_S:-200}
EST_WARM=${AA_EST_WARM_S:-90}
CAP_COLD=${AA_CAP_COLD_S:-330}        # the cold compile run is killed after this
RUNS=/tmp/aa-work/aa
rm -rf /tmp/aa-work && mkdir -p "$RUNS" "$OUT"
export PYTHONUNBUFFERED=1 SDSHAPE_CACHE_DIR=/tmp/aa-work/sdcache TORCHINDUCTOR_CACHE_DIR=/tmp/aa-inductor
mkdir -p "$SDSHAPE_CACHE_DIR"

elapsed() { echo $(($(date +%s) - T0)); }
say() { echo "[$(printf '%4d' "$(elapsed)") s] $*" | tee -a "$RUNS/progress.log"; }
pack() { tar czf "$OUT/aa-runs.tgz.part" -C /tmp/aa-work aa && mv "$OUT/aa-runs.tgz.part" "$OUT/aa-runs.tgz"; cp "$RUNS/progress.log" "$OUT/progress.log"; }

if [ "${AA_INSTALL:-1}" = 1 ]; then
  if [ -d .whl ] && [ ! -f /tmp/aa-site/.ok ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/aa-site .whl/*.whl \
      && touch /tmp/aa-site/.ok || { say "wheel install failed"; exit 3; }
  fi
  PROJ=${AA_PROJ:-.proj}; [ -d "$PROJ" ] || PROJ=.
  rm -rf /tmp/aa-projsite
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/aa-projsite "$PROJ" \
    || { say "project install failed"; exit 3; }
  export PYTHONPATH=/tmp/aa-projsite:/tmp/aa-site
  say "installed sdshape from $PROJ ($(cat "$PROJ/COMMIT" 2>/dev/null || echo 'working tree'))"
  PROJ=$(cd "$PROJ" && pwd); cd /tmp/aa-work  # so that `python -m` imports the installed sdshape, not ./sdshape
fi

{
  echo "date: $(date -u +%FT%TZ)"; echo "sdshape tree: $(cat "${PROJ:-.}/COMMIT" 2>/dev/null || echo 'working tree')"
  echo "command: sdshape run $ARGS --backend BACKEND --json FILE"; echo "nproc: $(nproc)"
  nvidia-smi 2>&1; nvidia-smi -q -d CLOCK,POWER,PERFORMANCE 2>&1 | head -80
  "$PY" -c "import sys, torch, diffusers, transformers, sdshape; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version()); print('diffusers', diffusers.__version__, 'transformers', transformers.__version__); print('sdshape from', sdshape.__file__)" 2>&1
} > "$RUNS/environment.txt"
tail -4 "$RUNS/environment.txt" | tee -a "$RUNS/progress.log"
pack

declare -A DONE=([eager]=0 [compile]=0) WANT=([eager]=$EAGER_N [compile]=$COMPILE_N) LONGEST=([eager]=0 [compile]=0)
COLD_DONE=${AA_COLD_DONE:-0}; COMPILE_DEAD=0  # AA_COLD_DONE=1: a warm machine's Inductor cache is filled
declare -A FROM=([eager]=${AA_EAGER_FROM:-1} [compile]=${AA_COMPILE_FROM:-1})  # numbering of a second batch

# one run: $1 = eager|compile. Returns 1 when it was not started (would not fit).
one_run() {
  local kind=$1 backend name est cap start rc dur
  if [ "$kind" = eager ]; then backend=eager; name=eager; else backend=compile:reduce-overhead; name=compile-reduce-overhead; fi
  if [ "$kind" = eager ]; then est=${LONGEST[eager]}; [ "$est" -gt 0 ] || est=$EST_EAGER
  elif [ $COLD_DONE = 0 ]; then est=$EST_COLD
  else est=${LONGEST[compile]}; [ "$est" -gt 0 ] || est=$EST_WARM; fi
  [ $(($(elapsed) + est)) -le "$DEADLINE" ] || return 1
  cap=$((HARD - $(elapsed)))
  [ "$kind" = compile ] && [ $COLD_DONE = 0 ] && [ "$cap" -gt "$CAP_COLD" ] && cap=$CAP_COLD
  local n; n=$(printf '%02d' $((DONE[$kind] + FROM[$kind])))
  local file="$RUNS/$name-$n"
  start=$(date +%s)
  timeout -k 10 "$cap" "$PY" -m sdshape.cli run $ARGS --backend "$backend" --json "$file.json" > "$file.log" 2>&1
  rc=$?; dur=$(($(date +%s) - start))
  local gpu; gpu=$(nvidia-smi --query-gpu=temperature.gpu,clocks.sm,power.draw --format=csv,noheader 2>/dev/null | head -1)
  local med; med=$("$PY" -c "
import json, sys
d = json.load(open(sys.argv[1]))
print(' '.join(f\"{b['extra_info']['stage']}={b['stats']['median'] * 1e3:.2f}ms\" for b in d['benchmarks'] if b.get('stats')))" "$file.json" 2>/dev/null)
  say "$name-$n rc=$rc ${dur}s gpu[$gpu] $med"
  if [ $rc = 0 ] && [ -s "$file.json" ]; then
    DONE[$kind]=$((DONE[$kind] + 1))
    if [ "$kind" = compile ] && [ $COLD_DONE = 0 ]; then COLD_DONE=1
    elif [ "$dur" -gt "${LONGEST[$kind]}" ]; then LONGEST[$kind]=$dur; fi
  else
    mv "$file.log" "$file.failed.log" 2>/dev/null; rm -f "$file.json"; tail -5 "$file.failed.log" | tee -a "$RUNS/progress.log"
    if [ "$kind" = compile ]; then COMPILE_DEAD=1; else FAILS=$((${FAILS:-0} + 1)); fi
  fi
  pack
  return 0
}

say "start: eager x$EAGER_N, compile:reduce-overhead x$COMPILE_N, deadline ${DEADLINE}s"
while [ ${DONE[eager]} -lt "$EAGER_N" ] && [ "$(elapsed)" -lt "$EAGER_UNTIL" ] && [ "${FAILS:-0}" -lt 3 ]; do
  one_run eager || break
done
next=compile
while :; do
  [ "${FAILS:-0}" -ge 3 ] && { say "three eager runs failed: stopping"; break; }
  eager_left=$((DONE[eager] < EAGER_N)); compile_left=$((COMPILE_DEAD == 0 && DONE[compile] < COMPILE_N))
  [ $eager_left = 1 ] || [ $compile_left = 1 ] || break
  [ $compile_left = 1 ] || next=eager
  [ $eager_left = 1 ] || next=compile
  if one_run "$next"; then
    [ "$next" = eager ] && next=compile || next=eager
  else
    # the other kind may still fit (an eager run where a compile run would not); if neither does, stop
    if [ "$next" = compile ]; then other=eager; other_left=$eager_left; else other=compile; other_left=$compile_left; fi
    [ "$other_left" = 1 ] || break
    one_run "$other" || break
  fi
done
say "done: eager ${DONE[eager]}, compile:reduce-overhead ${DONE[compile]} (cold compile done: $COLD_DONE)"
pack

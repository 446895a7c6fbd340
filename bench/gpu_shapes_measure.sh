#!/usr/bin/env bash
# `sdshape shapes --gpu CARD --measure` at full size on one GPU: every composition of zoo components within
# SD 1.5's 1.07 B parameters priced by the static model on the card this GPU is, the first five of the priced
# table measured (512 px, 50 steps, fp16, eager CUDA-graph replay), and the model's seconds per image (with
# its band) and peak set beside the measured ones, with an agreement verdict since the device is the card.
#
# NOT YET RUN: written on 2026-12-04 on a machine without a GPU; only its CPU check (below) has run.
#
# Made for the device tool's one-command lease (../shared/device/README.md):
#   here, once:   bash ../shared/device/fetch-wheels.sh --no-ort                     # .whl/ (ignored by git)
#                 cp ../shared/device/prelude.sh .device-prelude.sh; echo /.device-prelude.sh >> .git/info/exclude
#   optional:     the full-size traces made here, so the device does not spend minutes tracing (the pricing
#                 reads them back; ignored by git, about 2 MB: 55 traces):
#                 SDSHAPE_CACHE_DIR=.shapes-cache sdshape shapes --budget 1.07e9 --gpu H200 --precision fp16 \
#                   --backend compile; echo /.shapes-cache >> .git/info/exclude
#   device:       run(command="bash bench/gpu_shapes_measure.sh",
#                     carry=[".whl", ".device-prelude.sh", ".shapes-cache"], timeout_s=560)
#   CPU check:    SM_INSTALL=0 SM_PY=.venv/bin/python SM_SDSHAPE=".venv/bin/python -m sdshape.cli" SM_CARD="RTX 4060 8GB" \
#                   SM_ARGS="--family tiny --budget 4.5e5 --device cpu --resolution 64 --steps 2 --rounds 2 \
#                   --warmup 0" SM_TOP=2 OUT=/tmp/sm-test bash bench/gpu_shapes_measure.sh
#
# The card: SM_CARD if given, else the catalog entry torch's device name matches (sdshape's own matching, as
# calibration uses it); a GPU the catalog lacks stops the script (exit 4) with its name: add its entry in a
# TOML file (the bundled catalog's form), carry it, and give SM_CATALOG=FILE and SM_CARD=NAME.
# Files under $OUT: environment.txt, progress.log, shapes.txt (the terminal tables), shapes.err (progress
# and warnings), and shapes/ (shapes.json, shapes.md, priced.png, beside.png, pareto.png).
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/shapes-measure-out}
SDSHAPE=${SM_SDSHAPE:-sdshape}
PY=${SM_PY:-python3}
ARGS=${SM_ARGS:---budget 1.07e9 --precision fp16 --rounds 10 --warmup 2}
TOP=${SM_TOP:-5}
CAP=${SM_CAP_S:-520} # the measurement is killed by then, so the files still come back inside the lease
mkdir -p "$OUT"
say() { echo "[$(printf '%4d' $(($(date +%s) - T0))) s] $*" | tee -a "$OUT/progress.log"; }

if [ "${SM_INSTALL:-1}" = 1 ]; then
  [ -f .device-prelude.sh ] || { say "no .device-prelude.sh: see this script's header"; exit 3; }
  [ -d .shapes-cache ] && export SDSHAPE_CACHE_DIR=$PWD/.shapes-cache
  # shellcheck disable=SC1091
  . ./.device-prelude.sh || { say "installing the wheels or the project failed"; exit 3; }
fi
CATALOG=()
[ -n "${SM_CATALOG:-}" ] && CATALOG=(--gpu-catalog "$SM_CATALOG")

{
  echo "date: $(date -u +%FT%TZ)"; echo "sdshape tree: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "nproc: $(nproc)"; nvidia-smi 2>&1 || echo "no nvidia-smi"
  "$PY" -c "import sys, torch, diffusers, transformers, sdshape; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda); print('diffusers', diffusers.__version__, 'transformers', transformers.__version__); print('sdshape from', sdshape.__file__)" 2>&1
} > "$OUT/environment.txt"
tail -4 "$OUT/environment.txt" | tee -a "$OUT/progress.log"

CARD=${SM_CARD:-}
if [ -z "$CARD" ]; then
  CARD=$("$PY" - "${SM_CATALOG:-}" <<'EOF'
import sys

import torch

from sdshape.feasibility.catalog import load_catalog, match_measured

if not torch.cuda.is_available():
    print("torch sees no CUDA device (give SM_CARD to price a card anyway)")
    sys.exit(1)
props = torch.cuda.get_device_properties(0)
card = match_measured(load_catalog(sys.argv[1] or None), props.name, props.total_memory)
print(card.name if card else f"MISSING {props.name} ({props.total_memory / 2**30:.1f} GiB)")
EOF
  ) || { say "could not name the card: $CARD"; exit 4; }
  case "$CARD" in
    MISSING*) say "the catalog has no entry for ${CARD#MISSING }: add one (SM_CATALOG=FILE SM_CARD=NAME)"; exit 4 ;;
  esac
fi
say "pricing on $CARD, measuring the first $TOP: sdshape shapes $ARGS --gpu \"$CARD\" --measure --top $TOP"

# shellcheck disable=SC2086  # ARGS and SDSHAPE are word lists
timeout -k 10 "$CAP" $SDSHAPE shapes $ARGS --gpu "$CARD" ${CATALOG[@]+"${CATALOG[@]}"} --measure --top "$TOP" \
  --out "$OUT/shapes" > "$OUT/shapes.txt" 2> "$OUT/shapes.err"
rc=$?
say "sdshape shapes exited $rc after $(($(date +%s) - T0)) s"
[ $rc = 0 ] || tail -5 "$OUT/shapes.err" | tee -a "$OUT/progress.log"
if [ -f "$OUT/shapes/shapes.json" ]; then
  "$PY" - "$OUT/shapes/shapes.json" <<'EOF' | tee -a "$OUT/progress.log"
import json
import sys

document = json.load(open(sys.argv[1]))
print(document["comparison"]["statement"])
for shape in document["shapes"]:
    pair = (shape.get("measured") or {}).get("against_model")
    if pair:
        print(f"{shape['name']}: model {pair['model_seconds_per_image']:.3f} s "
              f"({pair['model_band'][0]:.3f}-{pair['model_band'][1]:.3f}), measured "
              f"{pair['measured_seconds_per_image'] or float('nan'):.3f} s; {pair['verdict'] or pair['no_verdict_because']}")
EOF
fi
exit $rc

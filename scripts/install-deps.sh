#!/usr/bin/env bash
# Installs the Debian packages predictd needs to build, test and benchmark, only if one is
# missing (apt-get update first). Runs as root on Debian 12; elsewhere prints what to install.
set -euo pipefail
PKGS=(
  build-essential pkg-config
  libmicrohttpd-dev libjansson-dev libyajl-dev libyaml-dev libsqlite3-dev libcurl4-openssl-dev
  sqlite3 curl python3 procps tzdata
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata libopenblas-dev
  python3-onnx python3-numpy
  clang libclang-rt-14-dev
  libwslay-dev nettle-dev python3-websockets
)
# bench only: the Python peer (FastAPI + Celery + Redis) it is measured against
if [ "${PREDICTD_BENCH_DEPS:-0}" = 1 ]; then
  PKGS+=(redis-server python3-fastapi python3-uvicorn python3-celery python3-redis python3-numpy)
  PKGS+=(python3-sklearn) # bench/iforest_bench.py: scikit-learn's IsolationForest beside ours
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: not root; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/bin/sh
# Installs exactly what wsi-vmamba's build and tests need on Debian 12 (bookworm).
# Idempotent: apt-get runs only when something is missing. Uses sudo when not run as root.
# The CUDA toolkit is not installed here: the build uses nvcc when it finds one (WSI_CUDA=AUTO).
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PKGS="build-essential cmake pkg-config
 libopenslide-dev libtiff-dev libhdf5-dev libsqlite3-dev libopenblas-dev
 libxml2-dev libcjson-dev libzip-dev libcairo2-dev libjpeg-dev zlib1g-dev
 clang libclang-rt-14-dev
 python3 python3-openslide python3-h5py python3-numpy python3-sklearn python3-scipy
 python3-skimage python3-tifffile"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update
  # shellcheck disable=SC2086
  $SUDO apt-get install -y --no-install-recommends $missing
fi
echo "install-deps: all dependencies present"

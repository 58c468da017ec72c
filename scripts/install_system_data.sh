#!/usr/bin/env bash
# Offline Fashion-MNIST comes from Debian's dataset-fashion-mnist package. Install it when we can
# (root with apt); otherwise say how, and carry on: the loader still tries torchvision's download.
set -u
dir=/usr/share/datasets/fashion-mnist
[ -f "$dir/train-images-idx3-ubyte.gz" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q --no-install-recommends dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q --no-install-recommends dataset-fashion-mnist; }) >/dev/null 2>&1 \
    && { echo "installed Debian dataset-fashion-mnist"; exit 0; }
fi
echo "note: Fashion-MNIST's offline copy is not installed (sudo apt-get install dataset-fashion-mnist);" \
     "the exercise will need torchvision's download instead." >&2
exit 0

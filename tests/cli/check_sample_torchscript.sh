#!/usr/bin/env bash
# End to end: `sample --torchscript` samples the right distribution. make_gaussian_flow_module
# writes a TorchScript module answering the exact velocity of N(0.3 + 0.04 k, 0.1²) per pixel
# (class k), sample draws from it with several solvers and grids, and the same helper checks each
# class's pixel mean (±0.01) and std (±15 %) from the IDX files, and summary.json (solver, grid,
# guidance, model calls). Then a module returning the wrong shape must make sample fail with one
# line on stderr naming both shapes, exit status 1 and no summary.json.
#
#   check_sample_torchscript.sh <work dir> <sample exe> <make_gaussian_flow_module exe>
set -u
work=$1 sample=$2 helper=$3
rm -rf "$work" && mkdir -p "$work"
export OMP_NUM_THREADS=1

"$helper" module "$work/gaussian_flow.pt" || { echo "FAIL: cannot write the module"; exit 1; }
"$helper" module "$work/wrong_shape.pt" --wrong-shape || { echo "FAIL: cannot write the module"; exit 1; }

failures=0
# run <solver> <steps> <grid> <classes> <guidance> <expected model calls per run, 0: any positive> [options]
run() {
  local solver=$1 steps=$2 grid=$3 classes=$4 guidance=$5 calls=$6
  shift 6
  local out="$work/$solver-$steps-$grid-g$guidance"
  if ! "$sample" --torchscript "$work/gaussian_flow.pt" --family flow --solver "$solver" --steps "$steps" \
      --grid "$grid" "$@" --per-class 20 --classes "$classes" --guidance "$guidance" --image-size 8 --channels 1 \
      --num-classes 10 --device cpu --out "$out" > "$out.log" 2>&1 < /dev/null; then
    echo "FAIL $solver: sample exited non-zero:"; tail -c 600 "$out.log"; echo
    failures=$((failures + 1))
    return
  fi
  "$helper" check "$out" "$solver" "$grid" "$classes" 20 "$guidance" "$calls" || failures=$((failures + 1))
}

# Grids: the data (s = 0.1) is narrow, so a solver whose last step into t = 1 is first order in
# the data estimate (the exponential integrators, k-DPM-2) returns the posterior mean
# E[x₁ | x_{t_{n−1}}], whose std is s·√(k t) with k = t s²/(t² s² + (1 − t)²): at t = 0.9 (10
# uniform steps) that is 0.067, a third too small. Those run on grids whose last point before
# t = 1 lies close to it (logsnr: 1 − 1e-3; shift 0.25). Calls per run: steps × calls per step;
# RK4 4 per step; k-DPM-2 2 per step but 1 on the first (from pure noise) and the last (into
# clean data) step; dopri5 adapts (any positive count).
run euler 100 uniform 0,5,9 1 100
run dpmpp_2m 10 logsnr 0,5,9 1 10
run unipc_bh2 8 logsnr 0,5,9 1 8
run dopri5 1 uniform 0,5,9 1 0
run k_dpm_2 10 shift 0,5,9 1 18 --shift 0.25
run rk4 5 uniform 0,5,9 1 20
# Guidance γ = 3 on the exact conditional and unconditional velocities is the exact velocity of
# N(0.3 + 3 · 0.04 k, 0.1²) (see make_gaussian_flow_module.cpp), so class 4 has mean 0.78. CFG
# batches both branches: one model call per prediction, as unguided.
run dpmpp_2m 10 logsnr 0,2,4 3 10
run rk4 5 uniform 0,2,4 3 20
# The same through the guidance options by name: linear guidance merged on data estimates, and an
# interval of σ that holds every step, are exactly CFG (policy/guidance.hpp), so the same moments.
run dpmpp_2m 10 logsnr 0,2,4 3 10 --guidance-method cfg --guidance-space data
run rk4 5 uniform 0,2,4 3 20 --guidance-interval 0,1e30

# Per-image noise: --batch does not change any image (the stochastic SDE solver draws fresh noise
# every step, so every draw must be per image for the bytes to agree).
for b in 250 7; do
  "$sample" --torchscript "$work/gaussian_flow.pt" --family flow --solver dpmpp_2m_sde --steps 6 --per-class 3 \
    --classes 0,5,9 --guidance 3 --image-size 8 --channels 1 --num-classes 10 --device cpu --batch "$b" \
    --out "$work/batch$b" > /dev/null 2>&1 < /dev/null || { echo "FAIL batch $b: sample exited non-zero"; failures=$((failures + 1)); }
done
if cmp -s "$work/batch250/samples-images-idx3-ubyte" "$work/batch7/samples-images-idx3-ubyte"; then
  echo "ok   --batch 250 and --batch 7 give the same images"
else
  echo "FAIL --batch 250 and --batch 7 differ"
  failures=$((failures + 1))
fi

# Micro-batching (--micro-batch): chunks of 3 images per forward, or none, give the same bytes as
# the CPU default of 8 (the Gaussian module answers each image on its own).
for mb in 0 3; do
  "$sample" --torchscript "$work/gaussian_flow.pt" --family flow --solver dpmpp_2m --steps 6 --per-class 3 \
    --classes 0,5,9 --guidance 3 --image-size 8 --channels 1 --num-classes 10 --device cpu --micro-batch "$mb" \
    --out "$work/micro$mb" > /dev/null 2>&1 < /dev/null || { echo "FAIL micro-batch $mb: sample exited non-zero"; failures=$((failures + 1)); }
done
"$sample" --torchscript "$work/gaussian_flow.pt" --family flow --solver dpmpp_2m --steps 6 --per-class 3 \
  --classes 0,5,9 --guidance 3 --image-size 8 --channels 1 --num-classes 10 --device cpu \
  --out "$work/micro-default" > /dev/null 2>&1 < /dev/null || { echo "FAIL micro-batch default: sample exited non-zero"; failures=$((failures + 1)); }
if cmp -s "$work/micro0/samples-images-idx3-ubyte" "$work/micro3/samples-images-idx3-ubyte" &&
   cmp -s "$work/micro0/samples-images-idx3-ubyte" "$work/micro-default/samples-images-idx3-ubyte" &&
   grep -q "8 images per forward" "$work/micro-default/summary.json" &&
   ! grep -q "images per forward" "$work/micro0/summary.json"; then
  echo "ok   --micro-batch 0, 3 and the default 8 give the same images; summary.json says which"
else
  echo "FAIL --micro-batch changes the images or summary.json does not say it"
  failures=$((failures + 1))
fi

# Sharded sampling (issue 17): 2 processes on loopback, with torchrun's variables, write the same
# bytes as 1 process, whatever each one's --batch (27 images: shards of 14 and 13, micro-batches of
# 4 leave short ones). Bounded: the group's timeout is 60 s, the test's 120 s.
port=$(( 20000 + ($$ * 7) % 20000 ))
for b in 250 4; do
  for r in 0 1; do
    RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$sample" --torchscript "$work/gaussian_flow.pt" \
      --family flow --solver dpmpp_2m_sde --steps 6 --per-class 3 --classes 0,5,9 --guidance 3 --image-size 8 \
      --channels 1 --num-classes 10 --device cpu --batch "$b" --out "$work/ranks2-batch$b" \
      > "$work/ranks2-batch$b-rank$r.log" 2>&1 < /dev/null &
  done
  wait %1; s0=$?; wait %2; s1=$?
  port=$((port + 1))
  if [ "$s0" -ne 0 ] || [ "$s1" -ne 0 ]; then
    echo "FAIL 2 processes, --batch $b: exit $s0 / $s1"; cat "$work/ranks2-batch$b-rank0.log" "$work/ranks2-batch$b-rank1.log"
    failures=$((failures + 1))
  elif cmp -s "$work/batch250/samples-images-idx3-ubyte" "$work/ranks2-batch$b/samples-images-idx3-ubyte" &&
       cmp -s "$work/batch250/samples-labels-idx1-ubyte" "$work/ranks2-batch$b/samples-labels-idx1-ubyte" &&
       grep -q '"processes": 2' "$work/ranks2-batch$b/summary.json"; then
    echo "ok   2 processes with --batch $b give the images of 1 process, byte for byte"
  else
    echo "FAIL 2 processes with --batch $b differ from 1 process"
    failures=$((failures + 1))
  fi
done

# A module answering [B,1,4,8] for x of [B,1,8,8]: exit 1, one line on stderr naming both shapes
# (after the progress bar's carriage returns), no summary.json.
"$sample" --torchscript "$work/wrong_shape.pt" --family flow --steps 2 --per-class 2 --classes 0 --guidance 1 \
  --image-size 8 --channels 1 --num-classes 10 --device cpu --out "$work/wrong" > /dev/null 2> "$work/wrong.err" < /dev/null
status=$?
lines=$(wc -l < "$work/wrong.err")
expected='sample: torchscript: the model returned [2, 1, 4, 8] for input [2, 1, 8, 8]'
if [ "$status" -eq 1 ] && [ "$lines" -eq 1 ] && [ "$(tail -c $((${#expected} + 1)) "$work/wrong.err")" = "$expected" ] &&
   ! [ -e "$work/wrong/summary.json" ]; then
  echo "ok   wrong shape: $expected"
else
  echo "FAIL wrong shape: exit $status, $lines lines on stderr:"; cat "$work/wrong.err"
  failures=$((failures + 1))
fi

echo "$failures failed"
[ "$failures" -eq 0 ]

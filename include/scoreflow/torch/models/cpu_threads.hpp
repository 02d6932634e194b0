#pragma once
// CPU threads for LibTorch work: n threads in LibTorch's own pool, one inside the BLAS.
//
// Why: Debian's LibTorch runs convolutions as im2col + sgemm from inside its OpenMP parallel
// loops, and links the pthreads build of OpenBLAS, which starts its own pool of one thread per
// core for every sgemm. On a 2-core machine that is 4 busy threads on 2 cores: both pools spin
// and yield (libgomp barriers and sched_yield took 40% of a training step's profile, sgemm 7%).
// Measured with bench_train_step on 2 threads: the class-conditioned UNet (D = 64, batch 64)
// trains at 63 images/s with OpenBLAS's default and 121 with one BLAS thread; plain PyTorch on
// the same machine goes from 74 to 125 (benchmarks/reference_pytorch.py). LibTorch's pool
// already spreads the work over the cores, so the BLAS does not need threads of its own.
//
// OpenBLAS is found at run time (dlsym of openblas_set_num_threads), so nothing links against a
// particular BLAS. Builds with MKL are left alone: LibTorch already hands MKL its own thread
// count and MKL's OpenMP shares LibTorch's pool.
#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

#include <ATen/Parallel.h>

#include "scoreflow/errors.hpp"

namespace scoreflow::models {

/// What set_cpu_threads did.
struct CpuThreads {
  int torch_threads = 0;  ///< LibTorch's intra-op pool
  bool openblas = false;  ///< OpenBLAS found and set to one thread
};

/// LibTorch's intra-op pool gets `threads` threads (≥ 1), OpenBLAS (if loaded) one.
inline CpuThreads set_cpu_threads(int threads) {
  scoreflow::detail::require(threads >= 1, "set_cpu_threads: threads", threads, "must be at least 1");
  if (at::get_num_threads() != threads) at::set_num_threads(threads);
  CpuThreads done{threads, false};
#if defined(__unix__) || defined(__APPLE__)
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);
    done.openblas = true;
  }
#endif
  return done;
}

}  // namespace scoreflow::models

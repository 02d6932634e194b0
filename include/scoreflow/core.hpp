#pragma once
// scoreflow::core umbrella header: every formula and policy, torch-free. Folders are layers;
// each header includes only what lies above it in this list:
//   errors.hpp    the exception types every layer throws
//   tensor/       the tensor extension point, the xtensor backend, portable seeded noise
//   process/      ᾱ tables, time grids, noise levels (α, σ, λ), prediction types, forward
//                 processes and conversions
//   solver/       step rules: DDPM, DDIM, flow ODE solvers, dynamic thresholding; the solver
//                 interface over (α, σ) paths (path, history, noise source) and its solvers
//   denoiser.hpp  any callable as a denoiser; batched evaluation
//   policy/       the sampler's four policies: schedule, guidance, combiner (with views and
//                 filters), constraint; and the starts
//   sampler.hpp   the one sampler loop
#include "scoreflow/errors.hpp"

#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"
#include "scoreflow/tensor/xtensor.hpp"

#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/process/noise_schedule.hpp"
#include "scoreflow/process/prediction.hpp"
#include "scoreflow/process/process.hpp"
#include "scoreflow/process/sigma_grids.hpp"
#include "scoreflow/process/time_grid.hpp"

#include "scoreflow/solver/deis.hpp"
#include "scoreflow/solver/diffusion_steps.hpp"
#include "scoreflow/solver/dpm_solver.hpp"
#include "scoreflow/solver/dynamic_threshold.hpp"
#include "scoreflow/solver/flow_solvers.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/solver/ipndm.hpp"
#include "scoreflow/solver/k_diffusion.hpp"
#include "scoreflow/solver/noise_source.hpp"
#include "scoreflow/solver/path.hpp"
#include "scoreflow/solver/runge_kutta.hpp"
#include "scoreflow/solver/unipc.hpp"

#include "scoreflow/denoiser.hpp"

#include "scoreflow/policy/combiners.hpp"
#include "scoreflow/policy/concepts.hpp"
#include "scoreflow/policy/constraints.hpp"
#include "scoreflow/policy/filters.hpp"
#include "scoreflow/policy/guidance.hpp"
#include "scoreflow/policy/schedule.hpp"
#include "scoreflow/policy/starts.hpp"
#include "scoreflow/policy/views.hpp"

#include "scoreflow/sampler.hpp"

#pragma once
// Where a stochastic step's fresh noise comes from: drawn from the sampler's generator (the
// default), or recorded — one tensor per grid index, so a run of another library (k-diffusion's
// `noise_sampler`, diffusers' `variance_noise`) can be reproduced exactly. Keyed by the grid index
// the step leaves, a source needs no counter and a restarted run draws the same tensors.
#include <cstddef>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

struct DrawnNoise {
  template <Tensor T>
  T operator()(const T& like, std::size_t /*grid_index*/, Generator& gen) const {
    return ops::randn_like(like, gen);
  }
};

template <Tensor T>
struct RecordedNoise {
  std::vector<T> noise;  ///< noise[i]: the draw of the step that leaves grid index i

  T operator()(const T& like, std::size_t grid_index, Generator&) const {
    if (grid_index >= noise.size())
      throw invalid_option(detail::concat("recorded noise: none for grid index ", grid_index, " (", noise.size(),
                                          " recorded)"));
    const T& z = noise[grid_index];
    if (ops::shape(z) != ops::shape(like))
      throw invalid_option(detail::concat("recorded noise for grid index ", grid_index,
                                          ": its shape differs from the sample's"));
    return z;
  }
};

}  // namespace scoreflow

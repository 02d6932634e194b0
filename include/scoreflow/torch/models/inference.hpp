#pragma once
// Preparing a trained UNet for sampling (inference only):
//
//   models::fold_batchnorm(net);      // Conv → BatchNorm pairs become one convolution (eval mode)
//   models::to_channels_last(net);    // 4-D weights in NHWC order (feed channels-last inputs too)
//   auto model = models::micro_batched(models::flow_velocity(net), 8);  // ≤ 8 images per forward
//
// fold_batchnorm puts the net in eval mode and folds every module that says it can
// (BatchNormFoldable, unet_blocks.hpp: each Conv–BatchNorm–GELU block): its BatchNorm's running
// statistics move into its convolution (Jacob et al. 2018, §3.2), one BatchNorm pass less per
// layer. The output equals the unfolded eval-mode output up to float rounding, and the state dict
// keeps its layout (the BatchNorms are left as identities). Do not train a folded net: its
// BatchNorms are skipped.
// micro_batched splits every model call into chunks of at most max_batch images (conditions that
// are tensors with the same batch are split alike) and concatenates the answers: on a CPU the
// activations of a small chunk stay in cache (measured: 8 images per forward run ~1.4× faster per
// image than 80). In eval mode the answers equal the whole-batch call up to float rounding.
// A model that shares its input across conditions (under_conditions, used by classifier-free
// guidance) is chunked by inputs: max_batch images, each with its k conditions, per forward.
// What each idea buys is measured in benchmarks/sample_flow.cpp (BM_SampleFlowCFG/.../ablation).
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"
#include "scoreflow/torch/models/unet_blocks.hpp"
#include "scoreflow/torch/tensor.hpp"

namespace scoreflow::models {

/// Folds the BatchNorm of every BatchNormFoldable module inside `net` (a module holder or
/// shared_ptr), found by walking its modules; returns how many were folded (0 when already
/// folded). Leaves the net in eval mode.
template <class Net>
std::int64_t fold_batchnorm(Net& net) {
  net->eval();
  std::int64_t folded = 0;
  for (const auto& m : net->modules(/*include_self=*/true))
    if (auto* block = m->template as<BatchNormFoldable>(); block != nullptr && !block->batchnorm_folded()) {
      block->fold_batchnorm();
      ++folded;
    }
  return folded;
}

/// Stores every 4-D parameter and buffer of `net` channels-last (NHWC). Convolutions then run in
/// that layout when their input is channels-last too (x.contiguous(torch::MemoryFormat::ChannelsLast)).
/// Measured on Debian's LibTorch 1.13 (CPU): sampling the D = 64 UNet ~10% slower than NCHW, and
/// training channels-last gave non-deterministic gradients and an occasional NaN loss, so neither
/// the sampler benchmarks' kept configuration nor the Trainer uses it. Inference outputs match NCHW.
template <class Net>
void to_channels_last(Net& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  for (auto& b : net->buffers())
    if (b.dim() == 4) b.set_data(b.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

/// The callable of micro_batched: fn(x, time, condition) in chunks of at most max_batch.
template <class F>
struct MicroBatchedFn {
  F fn;
  std::int64_t max_batch;

  template <class Time, class C>
  torch::Tensor operator()(const torch::Tensor& x, Time time, const C& condition) {
    const auto n = x.size(0);
    if (n <= max_batch) return fn(x, time, condition);
    std::vector<torch::Tensor> parts;
    for (std::int64_t start = 0; start < n; start += max_batch) {
      const auto len = std::min(max_batch, n - start);
      if constexpr (std::is_same_v<C, torch::Tensor>) {
        const bool per_sample = condition.defined() && condition.dim() > 0 && condition.size(0) == n;
        parts.push_back(fn(x.narrow(0, start, len), time, per_sample ? condition.narrow(0, start, len) : condition));
      } else {
        parts.push_back(fn(x.narrow(0, start, len), time, condition));
      }
    }
    return torch::cat(parts, 0);
  }

  /// fn.under_conditions in chunks of at most max_batch inputs (each with its k conditions);
  /// the answers are reassembled condition-major, as one call would return them.
  template <class Time>
  torch::Tensor under_conditions(const torch::Tensor& x, Time time, const torch::Tensor& c)
    requires requires(F& f) { { f.under_conditions(x, time, c) } -> std::convertible_to<torch::Tensor>; }
  {
    const auto n = x.size(0);
    // a c that is not k·N rows goes through whole, for fn's own error message
    if (n <= max_batch || !c.defined() || c.dim() == 0 || c.size(0) % n != 0) return fn.under_conditions(x, time, c);
    const auto k = c.size(0) / n;
    std::vector<std::vector<torch::Tensor>> by_condition(static_cast<std::size_t>(k));
    for (std::int64_t start = 0; start < n; start += max_batch) {
      const auto len = std::min(max_batch, n - start);
      std::vector<torch::Tensor> chunk_conditions;
      for (std::int64_t j = 0; j < k; ++j) chunk_conditions.push_back(c.narrow(0, j * n + start, len));
      const auto answer = fn.under_conditions(x.narrow(0, start, len), time, torch::cat(chunk_conditions, 0));
      for (std::int64_t j = 0; j < k; ++j)
        by_condition[static_cast<std::size_t>(j)].push_back(answer.narrow(0, j * len, len));
    }
    std::vector<torch::Tensor> parts;
    for (auto& answers : by_condition) parts.insert(parts.end(), answers.begin(), answers.end());
    return torch::cat(parts, 0);
  }
};

/// A denoiser that evaluates `model` at most max_batch images at a time (see the file comment).
template <class F>
Denoiser<MicroBatchedFn<F>> micro_batched(Denoiser<F> model, std::int64_t max_batch) {
  scoreflow::detail::require(max_batch >= 1, "max_batch", max_batch, "must be positive");
  return {MicroBatchedFn<F>{std::move(model.fn), max_batch}, model.prediction, model.variance};
}

}  // namespace scoreflow::models

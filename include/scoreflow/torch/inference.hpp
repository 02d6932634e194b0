#pragma once
// Preparing a trained UNet for sampling (inference only):
//
//   models::fold_batchnorm(net);      // Conv → BatchNorm pairs become one convolution (eval mode)
//   models::to_channels_last(net);    // 4-D weights in NHWC order (feed channels-last inputs too)
//
// fold_batchnorm puts the net in eval mode and moves every block's BatchNorm running statistics
// into its convolution (unet_blocks.hpp: Conv, DownConv, UpConv, Unflatten); the output equals
// the unfolded eval-mode output up to float rounding, and the state dict keeps its layout (the
// BatchNorms are left as identities). Do not train a folded net: its BatchNorms are skipped.
// What each step buys is measured in benchmarks/sample_flow.cpp (BM_SampleFlowCFG/.../<variant>).
#include <cstdint>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "scoreflow/torch/unet_blocks.hpp"

namespace scoreflow::models {

/// Folds every Conv→BatchNorm pair of the seed's blocks inside `net` (a module holder or
/// shared_ptr); returns how many were folded (0 when already folded). Leaves the net in eval mode.
template <class Net>
std::int64_t fold_batchnorm(Net& net) {
  net->eval();
  std::int64_t folded = 0;
  auto fold = [&folded](auto* block) {
    if (block != nullptr && !block->batchnorm_folded()) {
      block->fold_batchnorm();
      ++folded;
    }
  };
  for (const auto& m : net->modules(/*include_self=*/true)) {
    fold(m->template as<ConvImpl>());
    fold(m->template as<DownConvImpl>());
    fold(m->template as<UpConvImpl>());
    fold(m->template as<UnflattenImpl>());
  }
  return folded;
}

/// Stores every 4-D parameter and buffer of `net` channels-last (NHWC). Convolutions then run in
/// that layout when their input is channels-last too (x.contiguous(torch::MemoryFormat::ChannelsLast)).
template <class Net>
void to_channels_last(Net& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  for (auto& b : net->buffers())
    if (b.dim() == 4) b.set_data(b.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace scoreflow::models

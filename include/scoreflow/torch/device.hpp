#pragma once
// The device a program uses when its user names none: shared by the trainer's options
// (training/train_loop.hpp), the examples' "--device auto" and the TorchScript denoisers
// (interop/torchscript_denoiser.hpp), so that all of them pick the same one.
#include <torch/cuda.h>
#include <torch/types.h>

namespace scoreflow {

/// CUDA device 0 when LibTorch sees a GPU, else the CPU. Index 0 rather than "the current CUDA
/// device" (torch::kCUDA without an index): a tensor's device always carries its index, so a
/// tensor placed on default_device() compares equal to it.
inline torch::Device default_device() {
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

}  // namespace scoreflow

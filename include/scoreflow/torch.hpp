#pragma once
// scoreflow::torch umbrella header: the core (core.hpp) plus the LibTorch layer —
//   torch/tensor.hpp      torch::Tensor as a scoreflow tensor; device.hpp: default_device()
//   torch/models/         the seed's UNets, their sampler adapters, inference preparation
//   torch/training/       objectives, the trainer (EMA, lr schedule), its data sources and random stream, checkpoints
//   torch/data/           IDX files, labelled data sets, batching
//   torch/io/             images, loss logs, plots, atomic files, archive checks
//   torch/eval/           the sample-quality evaluator
//   torch/interop/        TorchScript denoisers and prompt embeddings (DeepFloyd IF)
#include "scoreflow/core.hpp"
#include "scoreflow/torch/data/batching.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"
#include "scoreflow/torch/eval/sample_quality.hpp"
#include "scoreflow/torch/interop/prompt_embeddings.hpp"
#include "scoreflow/torch/interop/torchscript_denoiser.hpp"
#include "scoreflow/torch/io/archive_integrity.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"
#include "scoreflow/torch/io/image_io.hpp"
#include "scoreflow/torch/io/io_error.hpp"
#include "scoreflow/torch/io/loss_log.hpp"
#include "scoreflow/torch/io/plot.hpp"
#include "scoreflow/torch/models/adapters.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"
#include "scoreflow/torch/models/inference.hpp"
#include "scoreflow/torch/models/unet.hpp"
#include "scoreflow/torch/models/unet_blocks.hpp"
#include "scoreflow/torch/device.hpp"
#include "scoreflow/torch/tensor.hpp"
#include "scoreflow/torch/torch_message.hpp"
#include "scoreflow/torch/training/batchnorm_statistics.hpp"
#include "scoreflow/torch/training/checkpoint.hpp"
#include "scoreflow/torch/training/data_source.hpp"
#include "scoreflow/torch/training/ema.hpp"
#include "scoreflow/torch/training/lr_schedule.hpp"
#include "scoreflow/torch/training/objectives.hpp"
#include "scoreflow/torch/training/train_loop.hpp"
#include "scoreflow/torch/training/training_rng.hpp"

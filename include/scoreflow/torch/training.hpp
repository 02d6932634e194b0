#pragma once
// Seed Part B training in C++: objectives (objectives.hpp), the generic trainer and data sources
// (train_loop.hpp), checkpoints (checkpoint.hpp). The models are in unet.hpp, their sampler
// adapters in adapters.hpp.
#include "scoreflow/torch/adapters.hpp"
#include "scoreflow/torch/checkpoint.hpp"
#include "scoreflow/torch/objectives.hpp"
#include "scoreflow/torch/train_loop.hpp"
#include "scoreflow/torch/unet.hpp"

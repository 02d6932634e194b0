// sample: the command-line front end. Samples a trained scoreflow UNet (a weight file or training
// checkpoint, e.g. from the gallery's cache) or any TorchScript module with the signature below,
// with the solver, grid, step count, guidance scale and seed chosen by name.
//
//   sample --model flow_class --weights cache/b_class_flow-…/model.pt --hidden 32 \
//          --solver dpmpp_2m --steps 8 --guidance 5 --per-class 4 --out samples_out
//   sample --list                         every solver and grid, one line each (also in --help)
//
// TorchScript signature: forward(x: Tensor[B,C,H,W] float32, t: Tensor[B] float32, c: Tensor[B,K]
// float32) -> Tensor[B,C,H,W]; t is the flow time in [0, 1] (t = 0 noise) with --family flow, the
// integer timestep 0…T−1 as a float with --family diffusion; c is the one-hot class (all zeros:
// unconditional). Outputs: samples.png (a grid), samples-images-idx3-ubyte /
// samples-labels-idx1-ubyte, and summary.json (settings, model calls, seconds).
//
// Sharded over processes with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):
// each rank samples its contiguous share of the images (shard_of), rank 0 gathers them and writes
// the same outputs. Image i's noise depends on (seed, i) only, so 1 process or 4, and any --batch,
// give the same images byte for byte (tests/cli/check_sample_torchscript.sh).
//   torchrun --no_python --nproc_per_node 2 ./sample --model ... --out samples_out
#include <CLI/CLI.hpp>
#include <unistd.h>
#include <torch/script.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <string_view>

#include "common/cli.hpp"
#include "common/program.hpp"
#include "common/guidance_choice.hpp"
#include "common/solvers.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/distributed/process_group.hpp"
#include "scoreflow/torch/models/adapters.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

namespace {

namespace sf = scoreflow;
namespace sm = scoreflow::models;
namespace fs = std::filesystem;
using T = torch::Tensor;

struct Options {
  std::string model = "flow_class", weights, torchscript, family = "flow", prediction, table = "cosine", norm = "batch";
  std::int64_t hidden = 64, num_classes = 10, image_size = 28, channels = 1;
  examples::SolverChoice solver{"euler"};
  bool no_corrector = false, list = false;
  std::string grid;
  int steps = 10;
  double guidance = 5.0, shift = 3.0;
  std::int64_t per_class = 4, count = 40, batch = 250;
  /// Images per model forward (models::micro_batched): −1 picks 8 on a CPU, where small chunks
  /// stay in cache, and the whole batch on an accelerator; 0 never splits.
  std::int64_t micro_batch = -1;
  std::string classes = "all", out = "sample_out", device = "auto";
  std::uint64_t seed = 42;
  examples::GuidanceChoice method{};
  std::string interval, ramp;  ///< "lo,hi" and "first,last", parsed in run()
  bool progress = isatty(2) != 0;  ///< the progress line, on a terminal only (logs and pipes stay clean)
};

std::string listing() {
  const auto row = [](std::string_view name, const std::string& summary) {
    return "  " + std::string(name) + std::string(20 - std::min<std::size_t>(19, name.size()), ' ') + summary + "\n";
  };
  std::string s = "solvers (--solver):\n";
  for (const auto& i : examples::solver_table()) {
    const char* fam = i.families == examples::both_families ? "flow, diffusion"
                      : i.families == examples::flow_family ? "flow" : "diffusion";
    s += row(i.name, std::string(i.summary) + " [" + fam + "]");
  }
  s += "guidance methods (--guidance-method):\n";
  for (const auto& g : examples::guidance_table) s += row(g.name, std::string(g.summary));
  s += "grids (--grid):\n";
  for (const auto& g : examples::grid_table()) s += row(g.name, std::string(g.summary));
  return s;
}

void add_options(CLI::App& app, Options& o) {
  app.add_option("--model", o.model, "flow_class, flow_time or ddpm_class (our UNets; ignored with --torchscript)")
      ->check(CLI::IsMember({"flow_class", "flow_time", "ddpm_class"}));
  app.add_option("--weights", o.weights, "scoreflow weight file or training checkpoint of --model");
  app.add_option("--torchscript", o.torchscript, "a TorchScript module with the signature in the header comment");
  app.add_option("--family", o.family, "flow or diffusion (the TorchScript module's time convention)")
      ->check(CLI::IsMember({"flow", "diffusion"}));
  app.add_option("--prediction", o.prediction, "noise, sample or velocity (default: velocity for flow; for ddpm_class: velocity)")
      ->check(CLI::IsMember({"noise", "sample", "velocity"}));
  app.add_option("--table", o.table, "diffusion: the model's ᾱ table, cosine or linear (T = 1000)")
      ->check(CLI::IsMember({"cosine", "linear"}));
  app.add_option("--hidden", o.hidden, "our UNet's D")->check(CLI::PositiveNumber);
  app.add_option("--norm", o.norm, "our UNet's normalisation, as trained: batch (the seed's) or group (train --norm group)")
      ->check(CLI::IsMember({"batch", "group"}));
  app.add_option("--num-classes", o.num_classes, "classes of the condition (K)")->check(CLI::PositiveNumber);
  app.add_option("--image-size", o.image_size, "H = W of the samples")->check(CLI::PositiveNumber);
  app.add_option("--channels", o.channels, "C of the samples")->check(CLI::PositiveNumber);
  app.add_option("--solver", o.solver.name, "solver by name (see --list)");
  app.add_option("--grid", o.grid, "grid by name (see --list; default uniform for flow, linspace for diffusion)");
  app.add_option("--steps", o.steps, "grid steps (model calls = steps × the solver's calls per step)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--order", o.solver.order, "multistep order (dpmpp 1-3, unipc 1-3, deis 1-3, ipndm 1-4, k_lms)");
  app.add_flag("--no-corrector", o.no_corrector, "UniPC without its UniC corrector");
  app.add_option("--eta", o.solver.eta, "k_euler_ancestral's η");
  app.add_option("--s-churn", o.solver.s_churn, "k_heun's churn");
  app.add_option("--rtol", o.solver.rtol, "dopri5 relative tolerance");
  app.add_option("--atol", o.solver.atol, "dopri5 absolute tolerance");
  app.add_option("--shift", o.shift, "the shift grid's s");
  app.add_option("--guidance", o.guidance, "classifier-free guidance γ (1: conditional only, no extra branch)");
  app.add_option("--guidance-method", o.method.method, "cfg, rescaled, apg or zero_star (see --list)");
  app.add_option("--rescale-phi", o.method.phi, "rescaled: φ (0: plain CFG, 1: fully rescaled)");
  app.add_option("--apg-eta", o.method.eta, "apg: weight of the parallel part");
  app.add_option("--apg-momentum", o.method.momentum, "apg: β of the running average (0: none)");
  app.add_option("--apg-norm-threshold", o.method.norm_threshold, "apg: r, the clipping norm (0: none)");
  app.add_option("--zero-init-steps", o.method.zero_init_steps, "zero_star: steps that predict zero");
  app.add_option("--guidance-space", o.method.space, "model or data: merge the model's outputs or the data estimates");
  app.add_option("--guidance-interval", o.interval, "lo,hi: guidance only for EDM σ = σ/α in (lo, hi], e.g. 0.28,5.42");
  app.add_option("--guidance-ramp", o.ramp, "first,last: guidance weight from the first to the last step (scale 1 + (γ − 1)·w)");
  app.add_option("--classes", o.classes, "'all' or a comma list of class indices; 'none': unconditional");
  app.add_option("--per-class", o.per_class, "samples per class")->check(CLI::PositiveNumber);
  app.add_option("--count", o.count, "samples when unconditional")->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "samples per sampler run (memory)")->check(CLI::PositiveNumber);
  app.add_option("--micro-batch", o.micro_batch, "images per model forward (-1: 8 on a CPU, the whole batch on CUDA; 0: never split)")
      ->check(CLI::Range(std::int64_t{-1}, std::numeric_limits<std::int64_t>::max()));
  app.add_option("--seed", o.seed, "the generator seed");
  app.add_option("--device", o.device, "cpu, cuda or auto");
  app.add_option("--out", o.out, "output folder");
  app.add_flag("--list", o.list, "print every solver and grid and exit");
  app.footer(listing());
}

sf::Parameterization parse_prediction(const std::string& s) {
  if (s == "noise") return sf::Parameterization::noise;
  if (s == "sample") return sf::Parameterization::sample;
  return sf::Parameterization::velocity;
}

/// Labels to sample: per_class of each listed class, or `count` unconditional (−1).
T make_labels(const Options& o) {
  if (o.classes == "none") return torch::full({o.count}, -1, torch::kLong);
  std::vector<std::int64_t> cls;
  if (o.classes == "all") {
    for (std::int64_t k = 0; k < o.num_classes; ++k) cls.push_back(k);
  } else {
    std::stringstream ss(o.classes);
    for (std::string item; std::getline(ss, item, ',');) {
      const auto v = examples::whole_int(item);
      if (!v || *v < 0 || *v >= o.num_classes)
        throw sf::invalid_option("classes: '" + item + "' is not a class index in [0, " + std::to_string(o.num_classes) + ")");
      cls.push_back(*v);
    }
  }
  return torch::tensor(cls, torch::kLong).repeat_interleave(o.per_class);
}

/// The one-hot conditions (zeros for −1, the unconditional label).
T conditions(const T& labels, std::int64_t k) {
  auto c = torch::zeros({labels.size(0), k});
  const auto known = labels >= 0;
  if (known.any().item<bool>()) c.index_put_({known}, sm::one_hot(labels.index({known}), k));
  return c;
}

/// Any model as fn(x, time, one-hot c) of one family.
template <class Time>
using ModelFn = std::function<T(const T&, Time, const T&)>;

struct Loaded {
  ModelFn<sf::FlowTime> flow;
  ModelFn<sf::Timestep> diffusion;
  sf::Parameterization prediction;
  bool is_flow;
  std::string description;
};

std::string shape_text(const T& t) {
  if (!t.defined()) return "nothing";
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

T checked_output(const T& y, const T& x, const char* who) {
  if (!y.defined() || y.sizes() != x.sizes())
    throw sf::shape_error(std::string(who) + ": the model returned " + shape_text(y) + " for input " + shape_text(x));
  return y;
}

Loaded load_whole_batch_model(const Options& o, torch::Device device) {
  Loaded m;
  if (!o.torchscript.empty()) {
    auto module = std::make_shared<torch::jit::script::Module>();
    try {
      *module = torch::jit::load(o.torchscript, device);
    } catch (const std::exception& e) {
      throw sf::invalid_option("torchscript '" + o.torchscript + "': cannot load: " + sf::detail::torch_message(e));
    }
    module->eval();
    m.is_flow = o.family == "flow";
    m.prediction = parse_prediction(o.prediction.empty() ? (m.is_flow ? "velocity" : "noise") : o.prediction);
    auto call = [module, device](const T& x, double t, const T& c) {
      torch::NoGradGuard guard;
      const auto xd = x.to(device, torch::kFloat32);
      const auto y = module->forward({xd, torch::full({x.size(0)}, t, xd.options()), c.to(xd.options())}).toTensor();
      return checked_output(y, xd, "torchscript").to(x.options());
    };
    m.flow = [call](const T& x, sf::FlowTime t, const T& c) { return call(x, t.value, c); };
    m.diffusion = [call](const T& x, sf::Timestep t, const T& c) { return call(x, t.value, c); };
    m.description = "TorchScript " + o.torchscript;
    return m;
  }
  if (o.weights.empty()) throw sf::invalid_option("give --weights (our UNet) or --torchscript (any module)");
  sm::UNetOptions u{.in_channels = o.channels, .hidden = o.hidden, .image_size = o.image_size, .num_classes = o.num_classes};
  u.norm = examples::normalization_named(o.norm);  // as train builds it
  m.description = o.model + " D = " + std::to_string(o.hidden) + (o.norm == "group" ? " GroupNorm" : "") + " from " + o.weights;
  // A weight file of another configuration names the first entry that differs; say which
  // options have to match the training run.
  const auto load = [&](torch::nn::Module& net) {
    try {
      // A checkpoint of a run with an EMA samples from the average, as the gallery does.
      if (sf::training::load_sampling_weights(o.weights, net)) m.description += " (EMA of the weights)";
    } catch (const sf::training::checkpoint_error& e) {
      throw sf::training::checkpoint_error(std::string(e.what()) + " (--model, --hidden, --norm, --num-classes, --channels and "
                                 "--image-size must be those of the training run)");
    }
  };
  if (o.model == "flow_time") {
    sm::TimeConditionalUNet net(u);
    net->to(device);
    load(*net);
    sm::fold_batchnorm(net);  // sampling only (inference.hpp): one BatchNorm pass less per layer
    auto v = sm::flow_velocity(net);
    m.flow = [v](const T& x, sf::FlowTime t, const T&) mutable { return v.fn(x, t, sf::NoCondition{}); };
    m.is_flow = true, m.prediction = sf::Parameterization::velocity;
    return m;
  }
  sm::ClassConditionalUNet net(u);
  net->to(device);
  load(*net);
  sm::fold_batchnorm(net);
  if (o.model == "flow_class") {
    auto v = sm::flow_velocity(net);
    m.flow = [v](const T& x, sf::FlowTime t, const T& c) mutable { return v.fn(x, t, c); };
    m.is_flow = true, m.prediction = sf::Parameterization::velocity;
    return m;
  }
  m.prediction = parse_prediction(o.prediction.empty() ? "velocity" : o.prediction);
  auto d = sm::ddpm_predictor(net, m.prediction);
  m.diffusion = [d](const T& x, sf::Timestep t, const T& c) mutable { return d.fn(x, t, c); };
  m.is_flow = false;
  return m;
}

/// The model of --weights or --torchscript, each call split into chunks of --micro-batch
/// images (models::micro_batched; measured on our UNets with 2 CPU threads: see the README's
/// `sample` section).
Loaded load_model(const Options& o, torch::Device device) {
  auto m = load_whole_batch_model(o, device);
  const std::int64_t chunk = o.micro_batch >= 0 ? o.micro_batch : device.is_cpu() ? 8 : 0;
  if (chunk > 0) {
    if (m.flow)
      m.flow = [f = sm::MicroBatchedFn<ModelFn<sf::FlowTime>>{m.flow, chunk}](const T& x, sf::FlowTime t, const T& c) mutable {
        return f(x, t, c);
      };
    if (m.diffusion)
      m.diffusion = [f = sm::MicroBatchedFn<ModelFn<sf::Timestep>>{m.diffusion, chunk}](const T& x, sf::Timestep t,
                                                                                          const T& c) mutable { return f(x, t, c); };
    m.description += ", " + std::to_string(chunk) + " images per forward";
  }
  return m;
}

struct Run {
  T images;
  std::size_t model_calls = 0;  ///< per sampler run (CFG batched: one call per prediction)
  std::size_t steps = 0;
};

/// One sampler run over `cond` (K columns; all-zero rows: unconditional), with a progress line.
template <class Schedule, class Model>
Run sample_chunk(const Schedule& schedule, Model& model, const T& cond, double gamma, bool guided, const Options& o,
                 sf::Generator& gen, torch::Device device, double& done_fraction, double total_chunks,
                 std::chrono::steady_clock::time_point start) {
  Run r;
  const auto proto = torch::zeros({cond.size(0), o.channels, o.image_size, o.image_size}, device);
  const auto c = cond.to(device);
  auto progress = [&](const sf::StepInfo<T>& info) {
    r.model_calls = info.model_calls, r.steps = info.step;
    if (!o.progress) return;
    const double frac = (done_fraction + (info.total ? static_cast<double>(info.step) / info.total : 1.0)) / total_chunks;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int width = 30, filled = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r[%s%s] %3.0f%%  step %zu/%zu  %zu calls  ETA %.0f s   ", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), 100 * frac, info.step, info.total, info.model_calls,
                 frac > 0 ? secs / frac - secs : 0.0);
  };
  if (guided) {
    examples::with_guidance(o.method, gamma, torch::zeros_like(c), [&](const auto& guidance) {
      sf::Sampler s{schedule, guidance, sf::SinglePrompt<T>{c}};
      r.images = s.sample(model, sf::PureNoise<T>{proto}, gen, progress).cpu();
      return 0;
    });
  } else {
    sf::Sampler s{schedule, sf::NoGuidance{}, sf::SinglePrompt<T>{c}};
    r.images = s.sample(model, sf::PureNoise<T>{proto}, gen, progress).cpu();
  }
  done_fraction += 1.0;
  return r;
}

int run(Options& o) {
  if (o.list) {
    std::printf("%s", listing().c_str());
    return 0;
  }
  o.solver.corrector = !o.no_corrector;
  const torch::Device device = o.device == "auto" ? sf::default_device() : torch::Device(o.device);
  // Everything a command line can get wrong is checked before the model is loaded.
  const bool is_flow = o.torchscript.empty() ? o.model != "ddpm_class" : o.family == "flow";
  examples::validate(o.solver);
  const auto pair_of = [](const std::string& text, const char* what) -> std::optional<std::pair<double, double>> {
    if (text.empty()) return std::nullopt;
    const auto comma = text.find(',');
    double a = NAN, b = NAN;
    try {
      if (comma == std::string::npos) throw std::invalid_argument(text);
      std::size_t used_a = 0, used_b = 0;
      const std::string sa = text.substr(0, comma), sb = text.substr(comma + 1);
      a = std::stod(sa, &used_a), b = std::stod(sb, &used_b);
      if (used_a != sa.size() || used_b != sb.size()) throw std::invalid_argument(text);
    } catch (const std::exception&) {
      throw sf::invalid_option(std::string(what) + " '" + text + "': expected two numbers 'a,b'");
    }
    if (!std::isfinite(a) || !std::isfinite(b)) throw sf::invalid_option(std::string(what) + " '" + text + "': not finite");
    return std::pair{a, b};
  };
  o.method.interval = pair_of(o.interval, "--guidance-interval");
  o.method.ramp = pair_of(o.ramp, "--guidance-ramp");
  examples::validate(o.method);
  examples::detail::require_family(o.solver, is_flow ? examples::flow_family : examples::diffusion_family);
  const std::string grid = o.grid.empty() ? (is_flow ? "uniform" : "linspace") : o.grid;
  const auto table = o.table == "linear" ? sf::NoiseSchedule::linear() : sf::NoiseSchedule::cosine();
  std::optional<sf::FlowGrid> flow_grid;
  std::optional<sf::DiffusionGrid> diffusion_grid;
  if (is_flow)
    flow_grid = examples::flow_grid(grid, o.steps, o.shift);
  else
    diffusion_grid = examples::diffusion_grid(grid, o.steps, table);
  const auto labels = make_labels(o);
  const auto cond = conditions(labels, o.num_classes);
  // The group first: a bad launch fails before any model is read.
  const auto comm = sf::distributed::connect(sf::distributed::launch_environment());
  auto m = load_model(o, device);
  const bool guided = o.classes != "none" && o.guidance != 1.0 && o.model != "flow_time";

  // Per-image noise: image i's noise depends on (seed, i) only, so neither --batch nor the number
  // of processes changes an image. This rank samples images [mine.begin, mine.end).
  const sf::distributed::Shard mine = sf::distributed::shard_of(labels.size(0), comm->rank(), comm->size());
  if (!comm->is_main()) o.progress = false;
  std::vector<T> parts;
  std::size_t calls = 0, steps = 0;
  const auto start = std::chrono::steady_clock::now();
  const double chunks = std::ceil(static_cast<double>(mine.size()) / o.batch);
  double done = 0;
  for (std::int64_t i = mine.begin; i < mine.end; i += o.batch) {
    const auto c = cond.slice(0, i, std::min(i + o.batch, mine.end));
    sf::Generator gen = sf::Generator::per_image(o.seed, static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(c.size(0)));
    Run r;
    if (m.is_flow) {
      auto model = sf::denoiser(m.flow, m.prediction);
      r = examples::with_flow_schedule(o.solver, *flow_grid, [&](auto schedule) {
        return sample_chunk(schedule, model, c, o.guidance, guided, o, gen, device, done, chunks, start);
      });
    } else {
      auto model = sf::denoiser(m.diffusion, m.prediction);
      r = examples::with_diffusion_schedule(o.solver, table, *diffusion_grid, [&](auto schedule) {
        return sample_chunk(schedule, model, c, o.guidance, guided, o, gen, device, done, chunks, start);
      });
    }
    parts.push_back(r.images);
    calls = r.model_calls, steps = r.steps;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.progress) std::fprintf(stderr, "\n");
  T local = parts.empty() ? torch::empty({0, o.channels, o.image_size, o.image_size}) : torch::cat(parts);
  if (comm->size() > 1) {
    // Ranks with no image still learn the model-call count (the same on every rank with images).
    std::vector<T> sums{torch::tensor({static_cast<std::int64_t>(calls), static_cast<std::int64_t>(steps),
                                       mine.size() > 0 ? std::int64_t{1} : std::int64_t{0}})};
    comm->all_reduce_sum(sums, "model-call counts");  // calls, steps, ranks with images
    const auto ranks_with_images = sums[0][2].item<std::int64_t>();
    calls = static_cast<std::size_t>(sums[0][0].item<std::int64_t>() / ranks_with_images);
    steps = static_cast<std::size_t>(sums[0][1].item<std::int64_t>() / ranks_with_images);
  }
  auto x = sf::distributed::gather_shards(*comm, local.contiguous(), labels.size(0), "gathering the samples on rank 0");
  if (!comm->is_main()) return 0;  // rank 0 writes every output
  if (!m.is_flow) x = (x + 1) / 2;  // our DDPM's images live in [−1, 1]
  x = x.clamp(0, 1);

  fs::create_directories(o.out);
  const fs::path out(o.out);
  sf::save_grid_png(out / "samples.png", x, sf::GridOptions{.nrow = o.classes == "none" ? 10 : o.per_class, .upscale = 2});
  sf::write_idx(out / "samples-images-idx3-ubyte", (x * 255).round().to(torch::kUInt8).squeeze(1));
  sf::write_idx(out / "samples-labels-idx1-ubyte", labels.clamp(0, 255).to(torch::kUInt8));
  nlohmann::json j = {{"model", m.description},
                      {"family", m.is_flow ? "flow" : "diffusion"},
                      {"prediction", sf::to_string(m.prediction)},
                      {"solver", o.solver.name},
                      {"order", o.solver.order},
                      {"corrector", o.solver.corrector},
                      {"grid", grid},
                      {"steps", steps},
                      {"model_calls_per_run", calls},
                      {"guidance", guided ? o.guidance : 1.0},
                      {"guidance_method", guided ? o.method.method : "none"},
                      {"guidance_space", o.method.space.empty() ? (o.method.method == "apg" ? "data" : "model") : o.method.space},
                      {"guidance_parameters", o.method.method == "rescaled" ? nlohmann::json{{"phi", o.method.phi}}
                                              : o.method.method == "apg"
                                                  ? nlohmann::json{{"eta", o.method.eta}, {"momentum", o.method.momentum},
                                                                   {"norm_threshold", o.method.norm_threshold}}
                                              : o.method.method == "zero_star"
                                                  ? nlohmann::json{{"zero_init_steps", o.method.zero_init_steps}}
                                                  : nlohmann::json::object()},
                      {"guidance_interval", o.interval},
                      {"guidance_ramp", o.ramp},
                      {"seed", o.seed},
                      {"noise", "per image: image i's noise depends on (seed, i) only, not on --batch or processes"},
                      {"processes", comm->size()},
                      {"samples", x.size(0)},
                      {"seconds", seconds},
                      {"images_per_second", x.size(0) / std::max(seconds, 1e-9)}};
  const std::string text = j.dump(2) + "\n";
  sf::write_file_atomically(out / "summary.json",
                            std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
  std::printf("%lld samples, %zu model calls per run, %.2f s: %s\n", static_cast<long long>(x.size(0)), calls, seconds,
              (out / "samples.png").c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::options_program<Options>("sample", "scoreflow sample: any solver, grid and guidance on a trained model", argc, argv,
                                            [](Options& o) { return run(o); });
}

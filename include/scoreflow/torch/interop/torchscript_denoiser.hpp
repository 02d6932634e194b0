#pragma once
// DeepFloyd IF from C++: its UNets exported to TorchScript (examples/deepfloyd_if/
// export_deepfloyd_if.py) as scoreflow denoisers, and IF's sampling set up as diffusers' IF
// pipelines set it up.
//
//   scoreflow::IFStage1 unet("if_stage1.pt", {scoreflow::default_device()});
//   auto prompts = scoreflow::PromptEmbeddings::load("prompts.sfemb");
//   auto sampler = scoreflow::if_stage1_sampler(
//       scoreflow::SinglePrompt<torch::Tensor>{prompts.get("a rocket ship")}, prompts.unconditional(), 7.0);
//   auto model = unet.denoiser();
//   scoreflow::Generator gen(42);
//   torch::Tensor image = sampler.sample(model, scoreflow::PureNoise<torch::Tensor>{torch::zeros({1, 3, 64, 64})}, gen);
//   // image: [1, 3, 64, 64] in [−1, 1]; scoreflow::if_upscale(stage2, image, ...) → [1, 3, 256, 256]
//
// The TorchScript interface (what the export script writes, and what the tests imitate):
//   stage I : forward(x [B,3,H,W] float, t [B] int64, prompt_embeds [B,77,D] float) → [B,6,H,W]
//   stage II: forward(x [B,6,H,W] float, t [B] int64, prompt_embeds [B,77,D] float,
//                     class_labels [B] int64) → [B,6,H,W]
// t holds one timestep per sample (int64, as diffusers' schedulers hold timesteps) rather than a
// scalar, so one traced graph serves every batch size. Output channels 0–2 are the noise estimate
// ε̂, channels 3–5 the learned-range variance interpolation v ∈ [−1, 1]. Stage II's x is x_t
// (3 channels) concatenated on channels with the upscaled low-resolution image noised to
// `noise_level` (3 channels), and class_labels is noise_level per sample, as in diffusers'
// IFSuperResolutionPipeline.
//
// An export also stores "scoreflow.txt" (key=value lines) among the archive's extra files: the
// stage, the device and dtype it was traced on (a traced graph keeps those as constants, so it
// runs only there; the adapters refuse a mismatch up front), the embedding width D and stage II's
// image-noising ᾱ table. A module without it (e.g. one defined in C++) is accepted; its
// parameters are then moved to the requested device and dtype.
//
// Every forward runs under c10::InferenceMode; inputs go to the model's device and dtype and the
// output comes back in x's, so a float32 sampler can drive a float16 CUDA model.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/InferenceMode.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/script.h>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"
#include "scoreflow/policy/guidance.hpp"
#include "scoreflow/policy/schedule.hpp"
#include "scoreflow/policy/starts.hpp"
#include "scoreflow/policy/views.hpp"
#include "scoreflow/process/noise_schedule.hpp"
#include "scoreflow/process/process.hpp"
#include "scoreflow/process/time_grid.hpp"
#include "scoreflow/sampler.hpp"
#include "scoreflow/solver/diffusion_steps.hpp"
#include "scoreflow/solver/dynamic_threshold.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/torch/device.hpp"
#include "scoreflow/torch/io/io_error.hpp"
#include "scoreflow/torch/tensor.hpp"
#include "scoreflow/torch/torch_message.hpp"

namespace scoreflow {

/// A TorchScript model failed inside its forward; the message names the file and the inputs.
struct model_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Precision { float32, float16 };

struct TorchScriptOptions {
  torch::Device device = torch::kCPU;
  /// Weights and compute precision. Unset: the export's (its metadata), else float32.
  /// float16 needs a CUDA device.
  std::optional<Precision> precision{};
};

/// The key=value metadata an export stores as the extra file "scoreflow.txt".
class ExportInfo {
 public:
  static constexpr const char* extra_file = "scoreflow.txt";

  ExportInfo() = default;
  static ExportInfo parse(const std::string& text) {
    ExportInfo info;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto eq = line.find('=');
      if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
      info.values_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return info;
  }
  [[nodiscard]] std::optional<std::string> get(const std::string& key) const {
    const auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] bool empty() const { return values_.empty(); }

 private:
  std::map<std::string, std::string> values_;
};

namespace detail {

inline std::string shape_of(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

/// One loaded TorchScript UNet of IF, validated, with its device, dtype and metadata.
class ScriptedUNet {
 public:
  ScriptedUNet(const std::filesystem::path& file, const TorchScriptOptions& options, int stage,
               std::size_t inputs, const char* signature)
      : file_(file), device_(options.device), stage_(stage) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
      throw_io(file, "no such file (expected a TorchScript export of DeepFloyd IF stage ", roman(), ")");
    info_ = read_info();
    check_metadata(options);
    try {
      module_ = torch::jit::load(file.string(), device_);
    } catch (const std::exception& e) {
      throw_io(file, "cannot be loaded as a TorchScript module: ", torch_message(e));
    }
    const auto forward = module_.find_method("forward");
    if (!forward)
      throw_io(file, "the TorchScript module has no forward method; IF stage ", roman(), " needs ", signature);
    const auto& args = forward->function().getSchema().arguments();
    const std::size_t got = args.empty() ? 0 : args.size() - 1;  // minus self
    if (got != inputs) {
      std::string names;
      for (std::size_t i = 1; i < args.size(); ++i) names += (i > 1 ? ", " : "") + args[i].name();
      throw_io(file, "forward takes ", got, " inputs (", names, "); IF stage ", roman(), " needs ", inputs, ": ",
               signature);
    }
    module_.eval();
    module_.to(device_, dtype_);
  }

  [[nodiscard]] const std::filesystem::path& file() const { return file_; }
  [[nodiscard]] torch::Device device() const { return device_; }
  [[nodiscard]] torch::ScalarType dtype() const { return dtype_; }
  [[nodiscard]] const ExportInfo& info() const { return info_; }
  [[nodiscard]] torch::jit::Module& module() const { return module_; }
  /// The embedding width D the export declares; 0 when unknown.
  [[nodiscard]] std::int64_t embedding_dim() const { return embedding_dim_; }
  [[nodiscard]] int train_timesteps() const { return train_timesteps_; }
  [[nodiscard]] std::string name() const { return concat("IF stage ", roman(), " '", file_.string(), "'"); }

  /// x [B,C,H,W] with C = `channels`: checked, as every shape problem names the parameter.
  void check_x(const torch::Tensor& x, std::int64_t channels, const char* what) const {
    if (!x.defined() || x.dim() != 4 || x.size(1) != channels || x.size(0) < 1)
      throw shape_error(concat(name(), ": ", what, " has shape ", shape_of(x), "; expected [B, ", channels, ", H, W]"));
    if (!x.is_floating_point())
      throw invalid_option(concat(name(), ": ", what, " dtype = ", x.scalar_type(), ": expected a floating-point tensor"));
  }

  void check_timestep(Timestep t) const {
    if (t.value < 0 || t.value >= train_timesteps_)
      throw invalid_option(concat(name(), ": timestep = ", t.value, ": must lie in [0, ", train_timesteps_ - 1,
                                  "] (the model is never called at −1, clean data)"));
  }

  /// prompt_embeds [E,77,D] for a batch of B: E must divide B; embedding row e serves samples
  /// e·B/E … (e+1)·B/E − 1 (so one [1,77,D] prompt serves a whole batch, and the blocks of a
  /// batched CFG or anagram call line up with their conditions). Returns [B,77,D].
  [[nodiscard]] torch::Tensor match_embeddings(const torch::Tensor& e, std::int64_t batch) const {
    if (!e.defined() || e.dim() != 3 || e.size(1) != 77 || e.size(2) < 1 ||
        (embedding_dim_ > 0 && e.size(2) != embedding_dim_))
      throw shape_error(concat(name(), ": prompt_embeds has shape ", shape_of(e), "; expected [B, 77, ",
                               embedding_dim_ > 0 ? std::to_string(embedding_dim_) : std::string("D"),
                               "] (T5 embeddings of the prompt)"));
    if (e.size(0) < 1 || batch % e.size(0) != 0)
      throw shape_error(concat(name(), ": prompt_embeds batch ", e.size(0), " does not divide the batch ", batch,
                               " of x (each embedding serves an equal block of consecutive samples)"));
    return e.size(0) == batch ? e : e.repeat_interleave(batch / e.size(0), 0);
  }

  [[nodiscard]] torch::Tensor to_model(const torch::Tensor& t) const { return t.to(device_, dtype_); }
  [[nodiscard]] torch::Tensor labels(std::int64_t batch, std::int64_t value) const {
    return torch::full({batch}, value, torch::TensorOptions().dtype(torch::kLong).device(device_));
  }

  /// Runs forward under InferenceMode, checks the output is a [B, 6, H, W] tensor and returns it
  /// on `like`'s device and dtype as an ordinary (non-inference) tensor.
  torch::Tensor run(std::vector<torch::IValue> inputs, const torch::Tensor& like, const std::string& described) const {
    torch::Tensor out;
    {
      c10::InferenceMode guard;
      torch::IValue result;
      try {
        result = module_.forward(std::move(inputs));
      } catch (const std::exception& e) {
        throw model_error(concat(name(), ": forward failed on ", described, ": ", torch_message(e)));
      }
      if (!result.isTensor())
        throw shape_error(concat(name(), ": forward returned a ", result.tagKind(),
                                 ", expected a tensor [B, 6, H, W] (export the UNet with return_dict=False and its [0])"));
      out = result.toTensor();
    }
    const auto b = like.size(0), h = like.size(2), w = like.size(3);
    if (out.dim() != 4 || out.size(0) != b || out.size(1) != 6 || out.size(2) != h || out.size(3) != w)
      throw shape_error(concat(name(), ": forward returned shape ", shape_of(out), " for ", described, "; expected [", b,
                               ", 6, ", h, ", ", w, "] (noise estimate 3 channels + variance 3 channels)"));
    out = out.to(like.device(), like.scalar_type());
    return out.is_inference() ? out.clone() : out;
  }

  template <class... Parts>
  [[noreturn]] void throw_io(const std::filesystem::path& file, Parts&&... parts) const {
    scoreflow::detail::throw_io(file, std::forward<Parts>(parts)...);
  }

 private:
  std::filesystem::path file_;
  torch::Device device_;
  torch::ScalarType dtype_ = torch::kFloat32;
  int stage_;
  ExportInfo info_;
  mutable torch::jit::Module module_;
  std::int64_t embedding_dim_ = 0;
  int train_timesteps_ = 1000;

  [[nodiscard]] const char* roman() const { return stage_ == 1 ? "I" : "II"; }

  /// The metadata, read before the (possibly many-gigabyte) weights are.
  ExportInfo read_info() const {
    try {
      caffe2::serialize::PyTorchStreamReader reader(file_.string());
      const std::string record = std::string("extra/") + ExportInfo::extra_file;
      if (!reader.hasRecord(record)) return {};
      auto [data, size] = reader.getRecord(record);
      return ExportInfo::parse(std::string(static_cast<const char*>(data.get()), size));
    } catch (const std::exception& e) {
      throw_io(file_, "not a TorchScript archive (a zip written by torch.jit.save): ", torch_message(e));
    }
  }

  void check_metadata(const TorchScriptOptions& options) {
    if (auto s = info_.get("stage"); s && *s != std::to_string(stage_))
      throw_io(file_, "is an export of IF stage ", *s == "2" ? "II" : *s == "1" ? "I" : s->c_str(), ", not stage ",
               roman(), " (load it with IFStage", *s, ")");
    if (auto d = info_.get("device")) {
      std::optional<torch::Device> traced;
      try {
        traced = torch::Device(*d);
      } catch (const std::exception&) {
        throw_io(file_, "metadata device = '", *d, "' is not a device name");
      }
      if (traced->type() != device_.type())
        throw invalid_option(concat("device = ", device_.str(), ": '", file_.string(), "' was traced on ", *d,
                                    " and runs only there (a traced graph keeps its device); re-export it with "
                                    "--device ", device_.is_cuda() ? "cuda" : "cpu", " or choose device ", *d));
    }
    std::optional<Precision> exported;
    if (auto t = info_.get("dtype")) {
      if (*t == "float16") exported = Precision::float16;
      else if (*t == "float32") exported = Precision::float32;
      else throw_io(file_, "metadata dtype = '", *t, "': expected float16 or float32");
    }
    if (options.precision && exported && *options.precision != *exported)
      throw invalid_option(concat("precision = ", text(*options.precision), ": '", file_.string(), "' was traced in ",
                                  text(*exported), " and runs only so (a traced graph keeps its dtype); re-export it "
                                  "with --dtype ", text(*options.precision)));
    const Precision p = options.precision.value_or(exported.value_or(Precision::float32));
    if (p == Precision::float16 && !device_.is_cuda())
      throw invalid_option(concat("precision = float16 for '", file_.string(), "': needs a CUDA device; device = ",
                                  device_.str()));
    dtype_ = p == Precision::float16 ? torch::kHalf : torch::kFloat32;
    if (auto d = info_.get("embedding_dim")) embedding_dim_ = parse_int(*d, "embedding_dim");
    if (auto n = info_.get("train_timesteps")) train_timesteps_ = static_cast<int>(parse_int(*n, "train_timesteps"));
  }

  std::int64_t parse_int(const std::string& v, const char* key) const {
    try {
      std::size_t used = 0;
      const auto n = std::stoll(v, &used);
      if (used == v.size() && n > 0) return n;
    } catch (const std::exception&) {
    }
    throw_io(file_, "metadata ", key, " = '", v, "': expected a positive integer");
  }
  static const char* text(Precision p) { return p == Precision::float16 ? "float16" : "float32"; }
};

}  // namespace detail

/// DeepFloyd IF stage I (64×64 text-to-image UNet) from a TorchScript export. As a denoiser:
/// ε-prediction with a learned-range variance; the condition is the prompt embedding tensor
/// [E, 77, D] (batch-concatenable, so CFG and combiners make one model call per step).
class IFStage1 {
 public:
  static constexpr const char* signature = "forward(x [B,3,H,W] float, t [B] int64, prompt_embeds [B,77,D] float)";

  /// Loads and validates the export; throws io_error (file missing, not TorchScript, wrong
  /// interface) or invalid_option (device or precision that the export cannot run on).
  explicit IFStage1(const std::filesystem::path& file, const TorchScriptOptions& options = {})
      : unet_(file, options, 1, 3, signature) {}

  /// ε̂ and v of x_t [B,3,H,W] (in [−1, 1] at t = 0) at timestep t ∈ [0, T): [B, 6, H, W] in x's
  /// device and dtype. prompt_embeds [E,77,D] with E dividing B (see match_embeddings).
  torch::Tensor operator()(const torch::Tensor& x, Timestep t, const torch::Tensor& prompt_embeds) const {
    unet_.check_x(x, 3, "x");
    unet_.check_timestep(t);
    const auto b = x.size(0);
    const auto e = unet_.match_embeddings(prompt_embeds, b);
    const std::string described = detail::concat("x ", detail::shape_of(x), ", t = ", t.value, ", prompt_embeds ",
                                                 detail::shape_of(prompt_embeds));
    return unet_.run({unet_.to_model(x), unet_.labels(b, t.value), unet_.to_model(e)}, x, described);
  }

  /// This model as a scoreflow denoiser: fn(x, Timestep, prompt_embeds) → [B, 6, H, W].
  [[nodiscard]] auto denoiser() const {
    return scoreflow::denoiser(*this, Parameterization::noise, VarianceOutput::learned_range);
  }

  [[nodiscard]] const std::filesystem::path& file() const { return unet_.file(); }
  [[nodiscard]] torch::Device device() const { return unet_.device(); }
  [[nodiscard]] torch::ScalarType dtype() const { return unet_.dtype(); }
  [[nodiscard]] const ExportInfo& info() const { return unet_.info(); }
  /// The underlying TorchScript module (a shared handle).
  [[nodiscard]] torch::jit::Module& module() const { return unet_.module(); }

 private:
  detail::ScriptedUNet unet_;
};

/// DeepFloyd IF stage II (64 → 256 super-resolution UNet) from a TorchScript export.
class IFStage2 {
 public:
  static constexpr const char* signature =
      "forward(x [B,6,H,W] float, t [B] int64, prompt_embeds [B,77,D] float, class_labels [B] int64)";
  static constexpr int default_noise_level = 250;  ///< IFSuperResolutionPipeline's default
  static constexpr std::int64_t default_size = 256;

  /// As IFStage1's. The image-noising ᾱ table comes from the export's metadata
  /// (`image_noising_alphas_cumprod`); without it, squaredcos_cap_v2 over 1000 steps, the
  /// image_noising_scheduler diffusers' scripts/convert_if.py builds for IF-II.
  explicit IFStage2(const std::filesystem::path& file, const TorchScriptOptions& options = {})
      : unet_(file, options, 2, 4, signature), noising_(noising_table(unet_)) {}

  [[nodiscard]] const NoiseSchedule& image_noising_schedule() const { return noising_; }

  /// The conditioning image of IFSuperResolutionPipeline (step 7): image [N,3,h,w] in [−1, 1]
  /// upsampled bilinearly (align_corners = true) to size × size, then noised to `noise_level`
  /// with the image-noising schedule: √ᾱ·up + √(1 − ᾱ)·ε, ε drawn from `gen`. float32, on the
  /// image's device.
  torch::Tensor prepare_low_res(const torch::Tensor& image, int noise_level, Generator& gen,
                                std::int64_t size = default_size) const {
    unet_.check_x(image, 3, "image");
    detail::require(size >= 1, "size", size, "must be positive");
    check_noise_level(noise_level);
    namespace F = torch::nn::functional;
    const auto up = F::interpolate(image.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                                  .size(std::vector<std::int64_t>{size, size})
                                                                  .mode(torch::kBilinear)
                                                                  .align_corners(true));
    return diffusion::forward(up, noising_.alpha_bar(noise_level), ops::randn_like(up, gen));
  }

  /// ε̂ and v of x_t [B,3,H,W] given the prepared low_res [N,3,H,W] (N dividing B; tiled, so
  /// the blocks of a batched CFG call each see images 0 … N−1): the model sees
  /// cat(x, low_res) [B,6,H,W] and class_labels = noise_level. Returns [B, 6, H, W].
  torch::Tensor operator()(const torch::Tensor& x, Timestep t, const torch::Tensor& prompt_embeds,
                           const torch::Tensor& low_res, int noise_level) const {
    unet_.check_x(x, 3, "x");
    unet_.check_timestep(t);
    check_noise_level(noise_level);
    const auto b = x.size(0);
    if (!low_res.defined() || low_res.dim() != 4 || low_res.size(1) != 3 || low_res.size(2) != x.size(2) ||
        low_res.size(3) != x.size(3) || low_res.size(0) < 1 || b % low_res.size(0) != 0)
      throw shape_error(detail::concat(unet_.name(), ": low_res has shape ", detail::shape_of(low_res),
                                       "; expected [N, 3, ", x.size(2), ", ", x.size(3), "] with N dividing the batch ",
                                       b, " of x (prepare it with prepare_low_res at x's size)"));
    const auto e = unet_.match_embeddings(prompt_embeds, b);
    const auto tiled = low_res.size(0) == b ? low_res : low_res.repeat({b / low_res.size(0), 1, 1, 1});
    const std::string described =
        detail::concat("x ", detail::shape_of(x), " ++ low_res ", detail::shape_of(low_res), ", t = ", t.value,
                       ", prompt_embeds ", detail::shape_of(prompt_embeds), ", noise_level = ", noise_level);
    const auto input = torch::cat({unet_.to_model(x), unet_.to_model(tiled)}, 1);
    return unet_.run({input, unet_.labels(b, t.value), unet_.to_model(e), unet_.labels(b, noise_level)}, x,
                     described);
  }

  /// A denoiser for one upscaling job: fn(x, Timestep, prompt_embeds) with low_res (from
  /// prepare_low_res) and noise_level bound. Use it with SinglePrompt or Factorized; for anagrams
  /// use conditioned_denoiser, whose condition carries low_res so that each view sees it.
  [[nodiscard]] auto denoiser(torch::Tensor low_res, int noise_level = default_noise_level) const {
    unet_.check_x(low_res, 3, "low_res");
    check_noise_level(noise_level);
    return scoreflow::denoiser(
        [self = *this, low = std::move(low_res), noise_level](const torch::Tensor& x, Timestep t,
                                                             const torch::Tensor& prompt_embeds) {
          return self(x, t, prompt_embeds, low, noise_level);
        },
        Parameterization::noise, VarianceOutput::learned_range);
  }

  /// A denoiser fn(x, Timestep, IFStage2Condition) with noise_level bound: the condition holds the
  /// prompt embeddings and the low-res image, so anagram parts show the model cat(V x_t, V low_res)
  /// (visual_anagrams' stage II), and anagrams and hybrids survive the upscaler.
  [[nodiscard]] auto conditioned_denoiser(int noise_level = default_noise_level) const;

  [[nodiscard]] const std::filesystem::path& file() const { return unet_.file(); }
  [[nodiscard]] torch::Device device() const { return unet_.device(); }
  [[nodiscard]] torch::ScalarType dtype() const { return unet_.dtype(); }
  [[nodiscard]] const ExportInfo& info() const { return unet_.info(); }
  [[nodiscard]] torch::jit::Module& module() const { return unet_.module(); }

 private:
  detail::ScriptedUNet unet_;
  NoiseSchedule noising_;

  void check_noise_level(int level) const {
    if (level < 0 || level >= noising_.size())
      throw invalid_option(detail::concat(unet_.name(), ": noise_level = ", level, ": must lie in [0, ",
                                          noising_.size() - 1, "]"));
  }

  static NoiseSchedule noising_table(const detail::ScriptedUNet& unet) {
    const auto text = unet.info().get("image_noising_alphas_cumprod");
    if (!text) return NoiseSchedule::cosine(1000);
    std::vector<double> table;
    std::istringstream in(*text);
    std::string item;
    while (std::getline(in, item, ',')) {
      try {
        std::size_t used = 0;
        table.push_back(std::stod(item, &used));
        if (used != item.size()) throw std::invalid_argument(item);
      } catch (const std::exception&) {
        unet.throw_io(unet.file(), "metadata image_noising_alphas_cumprod: entry ", table.size(), " = '", item,
                      "' is not a number");
      }
    }
    try {
      return NoiseSchedule(std::move(table));
    } catch (const std::exception& e) {
      unet.throw_io(unet.file(), "metadata image_noising_alphas_cumprod: ", e.what());
    }
  }
};

/// Stage II's condition when views are involved: prompt embeddings [N,77,D] and the prepared
/// low-res image [N,3,H,W] (IFStage2::prepare_low_res) of the same N samples.
struct IFStage2Condition {
  torch::Tensor prompt_embeds;
  torch::Tensor low_res;
};

/// Batched (one model call for every prompt and CFG branch); an anagram part's view applies to
/// the low-res image too (negation included, as the reference's negate view does to the
/// concatenated input); CFG's unconditional branch keeps each input's low-res image and takes the
/// policy's embeddings (as IFSuperResolutionPipeline guides the text only).
template <>
struct condition_traits<IFStage2Condition> {
  static IFStage2Condition concat(std::span<const IFStage2Condition> parts) {
    std::vector<torch::Tensor> e, l;
    for (const auto& p : parts) e.push_back(p.prompt_embeds), l.push_back(p.low_res);
    return {torch::cat(e), torch::cat(l)};
  }
  static IFStage2Condition apply_view(const IFStage2Condition& c, const View& view) {
    return {c.prompt_embeds, view.apply(c.low_res)};
  }
  static IFStage2Condition unconditional_for(const IFStage2Condition& unconditional, const IFStage2Condition& c) {
    return {unconditional.prompt_embeds, c.low_res};
  }
};

inline auto IFStage2::conditioned_denoiser(int noise_level) const {
  check_noise_level(noise_level);
  return scoreflow::denoiser(
      [self = *this, noise_level](const torch::Tensor& x, Timestep t, const IFStage2Condition& c) {
        return self(x, t, c.prompt_embeds, c.low_res, noise_level);
      },
      Parameterization::noise, VarianceOutput::learned_range);
}

// ---- sampling set up as diffusers' IF pipelines --------------------------------------------

/// Stage I's DDPMScheduler (DeepFloyd/IF-I-*-v1.0): squaredcos_cap_v2 over 1000 steps, ε
/// prediction, variance_type learned_range, dynamic thresholding (ratio 0.95, sample_max_value
/// 1.5). The grid defaults to IFPipeline's 100 "leading" steps; DiffusionGrid::strided() is the
/// seed's 990, 960, …, 0.
inline DiffusionSchedule<DDPMStep> if_stage1_schedule(DiffusionGrid grid = DiffusionGrid::spaced(100)) {
  return {NoiseSchedule::cosine(1000), std::move(grid),
          DDPMStep{StepVariance::learned_range, DynamicThreshold{0.95, 1.5}}};
}

/// Stage II's DDPMScheduler (DeepFloyd/IF-II-*-v1.0): as stage I's with sample_max_value 1.0;
/// IFSuperResolutionPipeline's default 50 steps.
inline DiffusionSchedule<DDPMStep> if_stage2_schedule(DiffusionGrid grid = DiffusionGrid::spaced(50)) {
  return {NoiseSchedule::cosine(1000), std::move(grid),
          DDPMStep{StepVariance::learned_range, DynamicThreshold{0.95, 1.0}}};
}

/// IFPipeline's sampling: stage I's schedule with classifier-free guidance γ (7 in the seed and in
/// IFPipeline) against the empty prompt's embedding, for any combiner over prompt embeddings
/// (SinglePrompt, Anagram, Factorized).
template <class Combiner = SinglePrompt<torch::Tensor>>
Sampler<DiffusionSchedule<DDPMStep>, ClassifierFree<torch::Tensor>, Combiner> if_stage1_sampler(
    Combiner prompts, torch::Tensor unconditional, double gamma = 7.0, DiffusionGrid grid = DiffusionGrid::spaced(100)) {
  return {if_stage1_schedule(std::move(grid)), ClassifierFree<torch::Tensor>{gamma, std::move(unconditional)},
          std::move(prompts)};
}

struct IFUpscaleOptions {
  int steps = 50;                               ///< IFSuperResolutionPipeline's default
  double gamma = 4.0;                           ///< its default guidance_scale
  int noise_level = IFStage2::default_noise_level;
  std::int64_t size = IFStage2::default_size;   ///< output height and width
};

/// Stage II as IFSuperResolutionPipeline runs it: images [N,3,h,w] in [−1, 1] (stage I's output)
/// → [N,3,size,size] in [−1, 1], guided by `prompt` against `unconditional` ([1,77,D] each, or
/// [N,77,D]). The low-resolution noise is drawn from `gen` before the sampler's.
inline torch::Tensor if_upscale(const IFStage2& stage2, const torch::Tensor& images, const torch::Tensor& prompt,
                                const torch::Tensor& unconditional, Generator& gen, const IFUpscaleOptions& options = {}) {
  const auto low = stage2.prepare_low_res(images, options.noise_level, gen, options.size);
  auto model = stage2.denoiser(low, options.noise_level);
  const Sampler sampler{if_stage2_schedule(DiffusionGrid::spaced(options.steps)),
                        ClassifierFree<torch::Tensor>{options.gamma, unconditional}, SinglePrompt<torch::Tensor>{prompt}};
  return sampler.sample(model, PureNoise<torch::Tensor>{torch::zeros_like(low)}, gen);
}

}  // namespace scoreflow

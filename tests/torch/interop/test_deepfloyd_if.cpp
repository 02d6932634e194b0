// DeepFloyd IF through TorchScript without the real weights: small TorchScript modules with IF's
// interface (defined here, saved to a file, loaded by the adapters) whose output is known, so the
// adapters' plumbing — output split, embedding/low-res pairing, one batched call per step under
// CFG and combiners, shape and file errors — is checked exactly. Plus the prompt-embeddings file.
#include <doctest/doctest.h>

#include <torch/torch.h>

#include "torch/data_helpers.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch/interop/prompt_embeddings.hpp"
#include "scoreflow/torch/interop/torchscript_denoiser.hpp"
#include "scoreflow/torch/tensor.hpp"

namespace test_deepfloyd_if {

using namespace scoreflow;

namespace {

constexpr std::int64_t D = 8;  // embedding width of the fake models (IF's T5: 4096)

// ε̂ = 0.1·x + mean(prompt_embeds of the sample), v = self.variance; counts its calls and keeps
// its last inputs in attributes.
const char* stage1_source = R"(
def forward(self, x, t, emb):
    self.calls = self.calls + 1
    self.last_batch = x.size(0)
    self.last_t = t
    self.last_emb = emb
    m = torch.mean(emb, [1, 2]).view(-1, 1, 1, 1)
    eps = 0.1 * x + m
    v = torch.ones_like(x) * self.variance
    return torch.cat([eps, v], 1)
)";

// Stage II: ε̂ = 0.1·x_t + 0.01·low_res + mean(emb), v = self.variance.
const char* stage2_source = R"(
def forward(self, x, t, emb, class_labels):
    self.calls = self.calls + 1
    self.last_input = x
    self.last_t = t
    self.last_labels = class_labels
    m = torch.mean(emb, [1, 2]).view(-1, 1, 1, 1)
    eps = 0.1 * x[:, 0:3] + 0.01 * x[:, 3:6] + m
    v = torch.ones_like(eps) * self.variance
    return torch.cat([eps, v], 1)
)";

torch::jit::Module make_module(const std::string& name, const std::string& source, double variance = 0.5) {
  torch::jit::Module m(name);
  m.register_attribute("calls", c10::IntType::get(), 0);
  m.register_attribute("last_batch", c10::IntType::get(), 0);
  m.register_attribute("variance", c10::FloatType::get(), variance);
  for (const char* t : {"last_t", "last_emb", "last_input", "last_labels"})
    m.register_attribute(t, c10::TensorType::get(), torch::zeros({0}));
  m.define(source);
  return m;
}

std::string metadata(int stage, const std::string& extra = "") {
  return "format=scoreflow-deepfloyd-if-1\nstage=" + std::to_string(stage) +
         "\ndevice=cpu\ndtype=float32\nembedding_dim=" + std::to_string(D) + "\ntrain_timesteps=1000\n" + extra;
}

void save(const torch::jit::Module& m, const std::filesystem::path& file, const std::string& meta) {
  torch::jit::ExtraFilesMap extra;
  if (!meta.empty()) extra["scoreflow.txt"] = meta;
  m.save(file.string(), extra);
}

std::filesystem::path stage1_file(const sftest::TempDir& dir, const std::string& meta = metadata(1)) {
  const auto file = dir / "if_stage1.pt";
  save(make_module("IFStage1Fake", stage1_source), file, meta);
  return file;
}

std::filesystem::path stage2_file(const sftest::TempDir& dir, const std::string& meta = metadata(2)) {
  const auto file = dir / "if_stage2.pt";
  save(make_module("IFStage2Fake", stage2_source), file, meta);
  return file;
}

std::int64_t calls(const torch::jit::Module& m) { return m.attr("calls").toInt(); }

torch::Tensor embedding(double value, std::int64_t rows = 1) { return torch::full({rows, 77, D}, value); }

/// The fake stage I's function written directly in C++: the reference for sampling.
auto reference_stage1() {
  return denoiser(
      [](const torch::Tensor& x, Timestep, const torch::Tensor& emb) {
        const auto b = x.size(0);
        const auto e = emb.size(0) == b ? emb : emb.repeat_interleave(b / emb.size(0), 0);
        const auto m = e.mean({1, 2}).view({-1, 1, 1, 1});
        return torch::cat({0.1 * x + m, torch::full_like(x, 0.5)}, 1);
      },
      Parameterization::noise, VarianceOutput::learned_range);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

template <class Exception, class Action>
std::string message_of(Action&& action) {
  try {
    action();
  } catch (const Exception& e) {
    return e.what();
  }
  FAIL("expected exception not thrown");
  return {};
}

bool contains(const std::string& haystack, const std::string& needle) {
  INFO("message: ", haystack);
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("IF stage I adapter: output split, timestep tensor, embeddings paired with their samples") {
  sftest::TempDir dir;
  const IFStage1 unet(stage1_file(dir));
  CHECK(unet.info().get("stage") == std::optional<std::string>("1"));
  CHECK(sftest::dtype_name(unet.dtype()) == "Float");

  torch::manual_seed(3);
  const auto x = torch::randn({2, 3, 8, 8});
  const auto out = unet(x, Timestep{500}, embedding(0.3));
  REQUIRE(out.sizes() == torch::IntArrayRef{2, 6, 8, 8});
  CHECK(max_diff(out.narrow(1, 0, 3), 0.1 * x + 0.3) < 1e-6);
  CHECK(max_diff(out.narrow(1, 3, 3), torch::full({2, 3, 8, 8}, 0.5)) < 1e-7);
  CHECK_FALSE(out.is_inference());
  CHECK(out.requires_grad() == false);

  // t reaches the model as int64 [B], one timestep per sample; one [1,77,D] prompt serves the batch.
  const auto t = unet.module().attr("last_t").toTensor();
  CHECK(sftest::dtype_name(t) == "Long");
  CHECK(t.sizes() == torch::IntArrayRef{2});
  CHECK(t.eq(500).all().item<bool>());
  CHECK(unet.module().attr("last_emb").toTensor().sizes() == torch::IntArrayRef{2, 77, D});

  // E = 2 embeddings for B = 4 samples: rows serve consecutive blocks (as batched CFG lays them out).
  const auto x4 = torch::randn({4, 3, 8, 8});
  const auto two = torch::cat({embedding(1.0), embedding(2.0)});
  const auto out4 = unet(x4, Timestep{10}, two);
  CHECK(max_diff(out4.narrow(1, 0, 3).narrow(0, 0, 2), 0.1 * x4.narrow(0, 0, 2) + 1.0) < 1e-6);
  CHECK(max_diff(out4.narrow(1, 0, 3).narrow(0, 2, 2), 0.1 * x4.narrow(0, 2, 2) + 2.0) < 1e-6);

  // float64 in, float64 out (the model computes in float32).
  CHECK(sftest::dtype_name(unet(x.to(torch::kFloat64), Timestep{1}, embedding(0.0))) == "Double");

  // As a scoreflow denoiser: evaluate() splits ε̂ from v and makes one call for cond + uncond.
  auto model = unet.denoiser();
  CHECK(model.prediction == Parameterization::noise);
  CHECK(model.variance == VarianceOutput::learned_range);
  const auto before = calls(unet.module());
  const auto answers = evaluate(model, std::vector<torch::Tensor>{x, x}, Timestep{700},
                                std::vector<torch::Tensor>{embedding(0.2), embedding(-0.2)}, CallSite{1, 700}, true);
  CHECK(calls(unet.module()) == before + 1);
  CHECK(unet.module().attr("last_batch").toInt() == 4);
  REQUIRE(answers.size() == 2);
  CHECK(max_diff(answers[0].value, 0.1 * x + 0.2) < 1e-6);
  CHECK(max_diff(answers[1].value, 0.1 * x - 0.2) < 1e-6);
  REQUIRE(answers[0].variance.has_value());
  CHECK(answers[0].variance->sizes() == torch::IntArrayRef{2, 3, 8, 8});
  CHECK(max_diff(*answers[1].variance, torch::full({2, 3, 8, 8}, 0.5)) < 1e-7);
}

TEST_CASE("IF stage I through scoreflow::Sampler: learned range + CFG + thresholding, one batched call per step") {
  sftest::TempDir dir;
  const IFStage1 unet(stage1_file(dir));
  auto model = unet.denoiser();
  auto reference = reference_stage1();
  const auto cond = embedding(0.05), uncond = embedding(-0.05), other = embedding(0.02);
  const PureNoise<torch::Tensor> start{torch::zeros({2, 3, 8, 8})};

  auto compare = [&](const auto& sampler, std::int64_t batch_per_call) {
    const auto before = calls(unet.module());
    Generator g1(42), g2(42);
    const auto got = sampler.sample(model, start, g1);
    const auto want = sampler.sample(reference, start, g2);
    CHECK(calls(unet.module()) - before == static_cast<std::int64_t>(sampler.schedule.size() - 1));
    CHECK(unet.module().attr("last_batch").toInt() == batch_per_call);
    CHECK(got.sizes() == torch::IntArrayRef{2, 3, 8, 8});
    CHECK(max_diff(got, want) < 1e-5);
    CHECK(got.abs().max().template item<double>() > 0.0);
  };

  SUBCASE("single prompt, γ = 7, 10 spaced steps: x and its unconditional twin in one call") {
    compare(if_stage1_sampler(SinglePrompt<torch::Tensor>{cond}, uncond, 7.0, DiffusionGrid::spaced(10)), 4);
  }
  SUBCASE("the seed's strided grid (990, 960, …, 0): 33 calls") {
    compare(if_stage1_sampler(SinglePrompt<torch::Tensor>{cond}, uncond, 7.0, DiffusionGrid::strided()), 4);
  }
  SUBCASE("visual anagram with a vertical flip: two prompts × CFG in one call") {
    compare(if_stage1_sampler(Anagram<torch::Tensor>{{{cond, View::identity()}, {other, View::flip_vertical()}}},
                              uncond, 7.0, DiffusionGrid::spaced(8)),
            8);
  }
  SUBCASE("hybrid image (low-pass of one prompt, high-pass of another)") {
    compare(if_stage1_sampler(Factorized<torch::Tensor>::hybrid(cond, other, GaussianBlur(5, 1.0)), uncond, 7.0,
                              DiffusionGrid::spaced(8)),
            8);
  }
}

TEST_CASE("IF sampling configuration matches diffusers' IF schedulers") {
  const auto s1 = if_stage1_schedule();
  CHECK(s1.grid.size() == 101);  // 100 leading steps + the final target −1
  CHECK(s1.grid[0].value == 990);
  CHECK(s1.grid[99].value == 0);
  CHECK(s1.table.size() == 1000);
  CHECK(s1.table.alphas_cumprod() == NoiseSchedule::cosine(1000).alphas_cumprod());
  CHECK(s1.rule.variance == StepVariance::learned_range);
  REQUIRE(s1.rule.threshold.has_value());
  CHECK(s1.rule.threshold->ratio() == 0.95);
  CHECK(s1.rule.threshold->max_value() == 1.5);
  const auto s2 = if_stage2_schedule();
  CHECK(s2.grid.size() == 51);
  REQUIRE(s2.rule.threshold.has_value());
  CHECK(s2.rule.threshold->max_value() == 1.0);
  CHECK(s2.rule.variance == StepVariance::learned_range);
  const auto sampler = if_stage1_sampler(SinglePrompt<torch::Tensor>{embedding(1)}, embedding(0), 7.0, DiffusionGrid::strided());
  CHECK(sampler.guidance.gamma() == 7.0);
  CHECK(sampler.schedule.grid.timesteps().front() == 990);
  CHECK(sampler.schedule.grid.timesteps().back() == 0);
}

TEST_CASE("IF adapters reject bad inputs and bad model outputs with messages naming file and parameter") {
  sftest::TempDir dir;
  const auto file = stage1_file(dir);
  const IFStage1 unet(file);
  const auto x = torch::zeros({2, 3, 8, 8});

  auto shape_message = [&](const torch::Tensor& xx, const torch::Tensor& emb) {
    return message_of<shape_error>([&] { (void)unet(xx, Timestep{10}, emb); });
  };
  // embedding width 16 where the export declares 8; 76 tokens; rank 2; batch 3 vs x batch 2
  for (const auto& emb : {torch::zeros({2, 77, 16}), torch::zeros({2, 76, D}), torch::zeros({77, D})}) {
    const auto m = shape_message(x, emb);
    CHECK(contains(m, "prompt_embeds"));
    CHECK(contains(m, file.string()));
    CHECK(contains(m, "[B, 77, 8]"));
  }
  CHECK(contains(shape_message(x, torch::zeros({3, 77, D})), "does not divide the batch 2"));
  CHECK(contains(shape_message(torch::zeros({2, 4, 8, 8}), embedding(0)), "x has shape [2, 4, 8, 8]"));
  CHECK(contains(shape_message(torch::zeros({3, 8, 8}), embedding(0)), "expected [B, 3, H, W]"));
  CHECK(contains(message_of<invalid_option>([&] { (void)unet(x, Timestep{-1}, embedding(0)); }), "timestep = -1"));
  CHECK(contains(message_of<invalid_option>([&] { (void)unet(x, Timestep{1000}, embedding(0)); }), "[0, 999]"));
  CHECK(calls(unet.module()) == 0);  // every check happens before the model runs

  SUBCASE("a model that returns 5 channels, inside the sampler too") {
    const auto broken = dir / "five_channels.pt";
    auto m = make_module("Broken", "def forward(self, x, t, emb):\n    return torch.cat([x, x[:, 0:2]], 1)\n");
    save(m, broken, metadata(1));
    const IFStage1 bad(broken);
    const auto msg = message_of<shape_error>([&] { (void)bad(x, Timestep{10}, embedding(0)); });
    CHECK(contains(msg, broken.string()));
    CHECK(contains(msg, "returned shape [2, 5, 8, 8]"));
    CHECK(contains(msg, "expected [2, 6, 8, 8]"));
    auto model = bad.denoiser();
    Generator gen(1);
    CHECK_THROWS_AS(if_stage1_sampler(SinglePrompt<torch::Tensor>{embedding(0)}, embedding(0), 7.0, DiffusionGrid::spaced(3))
                        .sample(model, PureNoise<torch::Tensor>{x}, gen),
                    shape_error);
  }
  SUBCASE("a model that returns a tuple (exported without return_dict=False)") {
    const auto tuple = dir / "tuple.pt";
    save(make_module("Tuple", "def forward(self, x, t, emb):\n    return (x, x)\n"), tuple, "");
    const IFStage1 bad(tuple);
    CHECK(contains(message_of<shape_error>([&] { (void)bad(x, Timestep{10}, embedding(0)); }), "return_dict=False"));
  }
  SUBCASE("a model whose forward fails inside") {
    const auto failing = dir / "failing.pt";
    save(make_module("Failing", "def forward(self, x, t, emb):\n    return torch.mm(x, emb)\n"), failing, "");
    const IFStage1 bad(failing);
    const auto msg = message_of<model_error>([&] { (void)bad(x, Timestep{10}, embedding(0)); });
    CHECK(contains(msg, failing.string()));
    CHECK(contains(msg, "forward failed on x [2, 3, 8, 8], t = 10"));
  }
}

TEST_CASE("IF adapters: missing, corrupt and mismatched TorchScript files are io_errors naming the file") {
  sftest::TempDir dir;
  sftest::check_io_error([&] { (void)IFStage1{dir / "nope.pt"}; }, dir / "nope.pt", "no such file");

  const auto corrupt = dir / "corrupt.pt";
  sftest::write_bytes(corrupt, sftest::Bytes(300, 0x5a));
  sftest::check_io_error([&] { (void)IFStage1{corrupt}; }, corrupt, "not a TorchScript archive");

  // a real export cut in half: the zip's central directory is gone
  const auto good = stage1_file(dir);
  auto bytes = sftest::read_bytes(good);
  const auto truncated = dir / "truncated.pt";
  sftest::write_bytes(truncated, sftest::Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2)));
  sftest::check_io_error([&] { (void)IFStage1{truncated}; }, truncated, "not a TorchScript archive");

  const auto no_forward = dir / "no_forward.pt";
  save(make_module("NoForward", "def predict(self, x):\n    return x\n"), no_forward, metadata(1));
  sftest::check_io_error([&] { (void)IFStage1{no_forward}; }, no_forward, "no forward method");

  const auto arity = dir / "arity.pt";
  save(make_module("Arity", "def forward(self, x, t):\n    return x\n"), arity, metadata(1));
  sftest::check_io_error([&] { (void)IFStage1{arity}; }, arity, "forward takes 2 inputs (x, t); IF stage I needs 3");
  sftest::check_io_error([&] { (void)IFStage2{good}; }, good, "is an export of IF stage I, not stage II");
  const auto s2 = stage2_file(dir);
  sftest::check_io_error([&] { (void)IFStage1{s2}; }, s2, "is an export of IF stage II, not stage I");

  // Device and precision the export cannot run on.
  const auto cuda = dir / "cuda.pt";
  save(make_module("Cuda", stage1_source), cuda, "stage=1\ndevice=cuda\ndtype=float16\n");
  CHECK(contains(message_of<invalid_option>([&] { (void)IFStage1{cuda}; }), "was traced on cuda"));
  CHECK(contains(message_of<invalid_option>([&] { (void)IFStage1(good, {torch::kCPU, Precision::float16}); }),
                 "precision = float16"));
  const auto plain = dir / "plain.pt";
  save(make_module("Plain", stage1_source), plain, "");
  CHECK(contains(message_of<invalid_option>([&] { (void)IFStage1(plain, {torch::kCPU, Precision::float16}); }),
                 "needs a CUDA device"));
  const IFStage1 no_metadata(plain);  // accepted: float32 on the CPU, embedding width unchecked
  CHECK(no_metadata.info().empty());
  CHECK(no_metadata(torch::zeros({1, 3, 4, 4}), Timestep{3}, torch::zeros({1, 77, 5})).size(1) == 6);
}

TEST_CASE("IF stage II adapter: x_t ++ upscaled noised low-res image, noise level as class labels") {
  sftest::TempDir dir;
  const IFStage2 unet(stage2_file(dir));
  CHECK(unet.image_noising_schedule().alphas_cumprod() == NoiseSchedule::cosine(1000).alphas_cumprod());

  // Bilinear with align_corners = true (as IFSuperResolutionPipeline): a 2×2 image → 4×4 samples it
  // at 0, ⅓, ⅔, 1 of the way between the corner pixels (align_corners = false would give 0, ¼, ¾,
  // 1); then √ᾱ·up + √(1 − ᾱ)·ε at the noise level.
  const auto image = torch::tensor({0.0f, 1.0f, 2.0f, 3.0f}).view({1, 1, 2, 2}).repeat({1, 3, 1, 1});
  Generator g1(7), g2(7);
  const auto low = unet.prepare_low_res(image, 250, g1, 4);
  const auto steps = torch::tensor({0.0, 1.0 / 3, 2.0 / 3, 1.0}, torch::kFloat32);
  const auto up = (2 * steps.view({4, 1}) + steps.view({1, 4})).view({1, 1, 4, 4}).repeat({1, 3, 1, 1});
  const double a = NoiseSchedule::cosine(1000).alpha_bar(250);
  const auto want = diffusion::forward(up, a, ops::randn_like(up, g2));
  REQUIRE(low.sizes() == torch::IntArrayRef{1, 3, 4, 4});
  CHECK(max_diff(low, want) < 1e-6);

  // One CFG-doubled call: the model sees cat(x, low_res tiled) on channels, labels = noise level.
  torch::manual_seed(5);
  const auto x = torch::randn({2, 3, 4, 4});
  const auto emb = torch::cat({embedding(0.1), embedding(-0.1)});
  const auto out = unet(x, Timestep{300}, emb, low, 250);
  REQUIRE(out.sizes() == torch::IntArrayRef{2, 6, 4, 4});
  const auto input = unet.module().attr("last_input").toTensor();
  REQUIRE(input.sizes() == torch::IntArrayRef{2, 6, 4, 4});
  CHECK(max_diff(input.narrow(1, 0, 3), x) == 0.0);
  CHECK(max_diff(input.narrow(1, 3, 3), low.repeat({2, 1, 1, 1})) == 0.0);
  const auto labels = unet.module().attr("last_labels").toTensor();
  CHECK(sftest::dtype_name(labels) == "Long");
  CHECK(labels.eq(250).all().item<bool>());
  CHECK(unet.module().attr("last_t").toTensor().eq(300).all().item<bool>());
  const auto tiled = low.repeat({2, 1, 1, 1});
  const auto m = torch::tensor({0.1f, -0.1f}).view({2, 1, 1, 1});
  CHECK(max_diff(out.narrow(1, 0, 3), 0.1 * x + 0.01 * tiled + m) < 1e-6);
  CHECK(max_diff(out.narrow(1, 3, 3), torch::full({2, 3, 4, 4}, 0.5)) < 1e-7);

  // Two low-res images, a CFG-doubled batch of 4: blocks [x₀ x₁ | x₀ x₁] see [l₀ l₁ | l₀ l₁].
  const auto lows = torch::cat({low, low + 1.0});
  (void)unet(torch::cat({x, x}), Timestep{300}, emb, lows, 250);
  CHECK(max_diff(unet.module().attr("last_input").toTensor().narrow(1, 3, 3), torch::cat({lows, lows})) == 0.0);

  CHECK(contains(message_of<shape_error>([&] { (void)unet(x, Timestep{300}, emb, torch::zeros({1, 3, 5, 5}), 250); }),
                 "low_res has shape [1, 3, 5, 5]"));
  CHECK(contains(message_of<invalid_option>([&] { (void)unet(x, Timestep{300}, emb, low, 1000); }),
                 "noise_level = 1000"));
  CHECK(contains(message_of<shape_error>([&] { (void)unet(torch::zeros({2, 6, 4, 4}), Timestep{300}, emb, low, 250); }),
                 "x has shape [2, 6, 4, 4]"));

  SUBCASE("if_upscale: the whole stage II run, one batched CFG call per step") {
    Generator gen(42);
    const auto before = calls(unet.module());
    const auto result = if_upscale(unet, torch::zeros({2, 3, 4, 4}), embedding(0.1), embedding(0.0), gen,
                                   IFUpscaleOptions{5, 4.0, 250, 16});
    CHECK(calls(unet.module()) - before == 5);
    CHECK(unet.module().attr("last_input").toTensor().sizes() == torch::IntArrayRef{4, 6, 16, 16});
    CHECK(result.sizes() == torch::IntArrayRef{2, 3, 16, 16});
    CHECK(result.isfinite().all().item<bool>());
  }
  SUBCASE("an export's own image-noising table replaces the default") {
    const auto linear_table = NoiseSchedule::linear(1000);
    std::string table;
    for (double v : linear_table.alphas_cumprod()) table += (table.empty() ? "" : ",") + scoreflow::detail::concat(v);
    const auto file = dir / "stage2_linear.pt";
    save(make_module("S2", stage2_source), file, metadata(2, "image_noising_alphas_cumprod=" + table + "\n"));
    const IFStage2 linear(file);
    CHECK(linear.image_noising_schedule().alpha_bar(250) == linear_table.alpha_bar(250));
    const auto broken = dir / "stage2_bad_table.pt";
    save(make_module("S2", stage2_source), broken, metadata(2, "image_noising_alphas_cumprod=0.9,0.8,oops\n"));
    sftest::check_io_error([&] { (void)IFStage2{broken}; }, broken, "entry 2 = 'oops'");
  }
}

TEST_CASE("IF stage II with views: each anagram part shows the model cat(V x_t, V low_res)") {
  // The fake's ε̂ = 0.1·x_t + 0.01·low_res + m is pixelwise linear in (x_t, low_res) plus a constant
  // m, so for a pixel permutation V, V⁻¹ ε̂(V x, V low) = ε̂(x, low) (negation is left out: it flips m):
  // an anagram of one prompt with itself under any view samples exactly as the plain prompt — and
  // would not if the view skipped the low-res image (V⁻¹ ε̂(V x, low) = 0.1 x + 0.01 V⁻¹ low + m).
  sftest::TempDir dir;
  const IFStage2 unet(stage2_file(dir));
  Generator g0(3);
  torch::manual_seed(11);
  const auto low = unet.prepare_low_res(torch::randn({2, 3, 4, 4}), 250, g0, 8);
  const IFStage2Condition prompt{torch::cat({embedding(0.1), embedding(0.2)}), low};
  const IFStage2Condition empty{torch::cat({embedding(0.0), embedding(0.0)}), low};
  auto model = unet.conditioned_denoiser(250);
  const auto schedule = if_stage2_schedule(DiffusionGrid::spaced(6));
  const auto proto = torch::zeros({2, 3, 8, 8});
  Generator g1(9);
  const auto before = calls(unet.module());
  const auto plain =
      Sampler{schedule, ClassifierFree<IFStage2Condition>{4.0, empty}, SinglePrompt<IFStage2Condition>{prompt}}.sample(
          model, PureNoise<torch::Tensor>{proto}, g1);
  CHECK(calls(unet.module()) - before == 6);
  // CFG's unconditional half keeps the low-res image: the model saw it in all four blocks.
  CHECK(max_diff(unet.module().attr("last_input").toTensor().narrow(1, 3, 3), torch::cat({low, low})) == 0.0);
  for (const View& v : {View::rotate90(), View::jigsaw(5), View::square_hinge(), View::skew()}) {
    CAPTURE(v.name());
    Generator g2(9);
    const Anagram<IFStage2Condition> anagram({{prompt, View::identity()}, {prompt, v}});
    const auto viewed = Sampler{schedule, ClassifierFree<IFStage2Condition>{4.0, empty}, anagram}.sample(
        model, PureNoise<torch::Tensor>{proto}, g2);
    CHECK(max_diff(viewed, plain) < 1e-5);
    // The second part's blocks saw V low (unconditional and conditional alike).
    const auto input = unet.module().attr("last_input").toTensor();
    REQUIRE(input.size(0) == 8);
    CHECK(max_diff(input.narrow(0, 2, 2).narrow(1, 3, 3), v.apply(low)) == 0.0);
    CHECK(max_diff(input.narrow(0, 6, 2).narrow(1, 3, 3), v.apply(low)) == 0.0);
  }
}

// ---- prompt embeddings file ----------------------------------------------------------------

namespace {
void put_u32(sftest::Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void put_i64(sftest::Bytes& b, std::int64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<unsigned char>(static_cast<std::uint64_t>(v) >> (8 * i)));
}
/// A file with one entry named `name` of shape `dims` holding `values` floats (0.25 each).
sftest::Bytes one_entry(const std::string& name, const std::vector<std::int64_t>& dims, std::int64_t values,
                        std::uint32_t version = 1) {
  sftest::Bytes b{'S', 'F', 'P', 'R', 'O', 'M', 'P', 'T'};
  put_u32(b, version);
  put_u32(b, 1);
  put_u32(b, static_cast<std::uint32_t>(name.size()));
  b.insert(b.end(), name.begin(), name.end());
  put_u32(b, static_cast<std::uint32_t>(dims.size()));
  for (auto d : dims) put_i64(b, d);
  for (std::int64_t i = 0; i < values; ++i) put_u32(b, 0x3e800000u);  // 0.25f
  return b;
}
}  // namespace

TEST_CASE("prompt embeddings: file round trip, lookup, and the empty prompt") {
  sftest::TempDir dir;
  torch::manual_seed(11);
  PromptEmbeddings p;
  const auto rocket = torch::randn({1, 77, D}), dog = torch::randn({77, D}), null = torch::randn({1, 77, D});
  p.add("a rocket ship", rocket);
  p.add("a photo of a dog", dog);
  p.add("", null);
  CHECK(p.size() == 3);
  CHECK(p.dim() == D);
  const auto file = dir / "prompts.sfemb";
  p.save(file);
  CHECK_FALSE(std::filesystem::exists(temp_path_for(file)));

  const auto q = PromptEmbeddings::load(file);
  CHECK(q.names() == std::vector<std::string>{"a rocket ship", "a photo of a dog", ""});
  CHECK(q.dim() == D);
  CHECK(q.source() == file);
  CHECK(q.get("a rocket ship").equal(rocket));
  CHECK(q.get("a photo of a dog").sizes() == torch::IntArrayRef{1, 77, D});
  CHECK(q.get("a photo of a dog").equal(dog.unsqueeze(0)));
  CHECK(q.unconditional().equal(null));
  CHECK(q.contains(""));
  CHECK_FALSE(q.contains("a cat"));

  const auto missing = message_of<invalid_option>([&] { (void)q.get("a cat"); });
  CHECK(contains(missing, "prompt = 'a cat'"));
  CHECK(contains(missing, file.string()));
  CHECK(contains(missing, "'a rocket ship', 'a photo of a dog', '' (the empty prompt)"));
  PromptEmbeddings no_null;
  no_null.add("x", rocket);
  CHECK(contains(message_of<invalid_option>([&] { (void)no_null.unconditional(); }), "'' (the empty prompt)"));

  // The embeddings drive the adapter directly.
  const IFStage1 unet(stage1_file(dir));
  CHECK(unet(torch::zeros({1, 3, 4, 4}), Timestep{5}, q.get("a rocket ship")).size(1) == 6);

  // A file written by hand in the documented layout ([77, D] rank 2) reads the same.
  const auto manual = dir / "manual.sfemb";
  sftest::write_bytes(manual, one_entry("hand", {77, D}, 77 * D));
  CHECK(PromptEmbeddings::load(manual).get("hand").eq(0.25).all().item<bool>());
}

TEST_CASE("prompt embeddings: wrong shapes and malformed files are named") {
  PromptEmbeddings p;
  CHECK(contains(message_of<shape_error>([&] { p.add("a", torch::zeros({1, 76, D})); }), "prompt 'a': embedding shape [1, 76, 8]"));
  CHECK(contains(message_of<shape_error>([&] { p.add("a", torch::zeros({2, 77, D})); }), "expected [77, D] or [1, 77, D]"));
  CHECK(contains(message_of<shape_error>([&] { p.add("a", torch::zeros({77})); }), "embedding shape [77]"));
  p.add("a", torch::zeros({1, 77, D}));
  CHECK(contains(message_of<shape_error>([&] { p.add("b", torch::zeros({1, 77, 4})); }), "width 4 differs from the width 8"));
  CHECK_THROWS_AS(p.add("c", torch::full({77, D}, std::nan(""))), non_finite_error);
  CHECK(p.size() == 1);

  sftest::TempDir dir;
  const auto f = dir / "bad.sfemb";
  auto check_file = [&](const sftest::Bytes& bytes, const std::string& phrase) {
    sftest::write_bytes(f, bytes);
    sftest::check_io_error([&] { (void)PromptEmbeddings::load(f); }, f, phrase);
  };
  check_file(sftest::Bytes{'n', 'o', 'p', 'e'}, "no \"SFPROMPT\" magic");
  check_file(one_entry("x", {1, 77, D}, 77 * D, 2), "format version 2");
  check_file(one_entry("skull", {2, 77, D}, 2 * 77 * D), "prompt 'skull'): shape [2, 77, 8]");
  check_file(one_entry("skull", {1, 64, D}, 64 * D), "prompt 'skull'): shape [1, 64, 8]");
  check_file(one_entry("skull", {1, 77, D, 1}, 77 * D), "prompt 'skull'): rank 4");
  check_file(one_entry("skull", {1, 77, D}, 77 * D - 1), "prompt 'skull'): truncated");
  auto trailing = one_entry("skull", {1, 77, D}, 77 * D);
  trailing.push_back(0);
  check_file(trailing, "1 unexpected bytes after the last of 1 entries");
  auto cut = one_entry("skull", {1, 77, D}, 77 * D);
  cut.resize(20);
  check_file(cut, "truncated while reading entry 0: name");
  check_file(sftest::Bytes{}, "no \"SFPROMPT\" magic");
  // two entries of different width
  PromptEmbeddings one;
  one.add("wide", torch::zeros({1, 77, D}));
  one.save(f);
  auto two = sftest::read_bytes(f);
  two[12] = 2;  // entry count
  const auto second = one_entry("narrow", {1, 77, 4}, 77 * 4);
  two.insert(two.end(), second.begin() + 16, second.end());
  check_file(two, "entry 1: prompt 'narrow': embedding width 4 differs from the width 8");
  sftest::check_io_error([&] { (void)PromptEmbeddings::load(dir / "absent.sfemb"); }, dir / "absent.sfemb", "no such file");
}
}  // namespace test_deepfloyd_if

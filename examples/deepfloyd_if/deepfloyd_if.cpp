// DeepFloyd IF from C++: the seed's Part A (§0, §1.5–§1.9) with the TorchScript exports of
// export_deepfloyd_if.py, every image sampled by scoreflow::Sampler. Writes PNGs to --out.
//
//   deepfloyd_if --stage1 if_stage1.pt --stage2 if_stage2.pt --embeddings prompts.sfemb --out out
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "../common/cli.hpp"
#include "scoreflow/torch/interop/prompt_embeddings.hpp"
#include "scoreflow/torch/interop/torchscript_denoiser.hpp"
#include "scoreflow/torch/io/image_io.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

using namespace scoreflow;
using Prompt = torch::Tensor;

namespace {
std::string slug(const std::string& text) {
  std::string s;
  for (char c : text)
    if (std::isalnum(static_cast<unsigned char>(c))) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!s.empty() && s.back() != '_') s += '_';
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DeepFloyd IF from C++ (seed Part A): sampling, CFG, visual anagrams, hybrid images"};
  examples::one_line_parse_errors(app);
  std::string stage1_file, stage2_file, embeddings_file, out_dir = "deepfloyd_if_out";
  std::uint64_t seed = 42;
  std::vector<int> steps{50, 100};
  double gamma = 7.0;
  int samples = 5;
  bool cpu = false;
  app.add_option("--stage1", stage1_file, "stage I TorchScript export (if_stage1.pt)")->required()->check(CLI::ExistingFile);
  app.add_option("--stage2", stage2_file, "stage II export (if_stage2.pt); without it, no 256x256 images")->check(CLI::ExistingFile);
  app.add_option("--embeddings", embeddings_file, "prompt embeddings (prompts.sfemb)")->required()->check(CLI::ExistingFile);
  app.add_option("--out", out_dir, "output directory")->capture_default_str();
  app.add_option("--seed", seed, "random seed, the same for every part")->capture_default_str();
  app.add_option("--steps", steps, "IFPipeline step counts for §0")->capture_default_str();
  app.add_option("--gamma", gamma, "classifier-free guidance scale")->capture_default_str();
  app.add_option("--samples", samples, "images for §1.5 and §1.6")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_flag("--cpu", cpu, "run on the CPU even when CUDA is available (needs a CPU float32 export)");
  CLI11_PARSE(app, argc, argv);
  scoreflow::models::set_cpu_threads(at::get_num_threads());  // OMP_NUM_THREADS in LibTorch, one in OpenBLAS

  try {
    const torch::Device device = cpu ? torch::Device(torch::kCPU) : default_device();
    const IFStage1 stage1(stage1_file, {device});
    std::optional<IFStage2> stage2;
    if (!stage2_file.empty()) stage2.emplace(stage2_file, TorchScriptOptions{device});
    const auto prompts = PromptEmbeddings::load(embeddings_file);
    const auto prompt = [&](const std::string& name) -> Prompt { return prompts.get(name).to(device); };
    const Prompt null = prompt("");
    auto model = stage1.denoiser();
    const std::filesystem::path out(out_dir);
    std::filesystem::create_directories(out);
    std::printf("DeepFloyd IF on %s (%s), seed %llu, %zu prompts in %s\n", device.str().c_str(),
                c10::toString(stage1.dtype()), static_cast<unsigned long long>(seed), prompts.size(),
                embeddings_file.c_str());

    auto save = [&](const std::string& name, const torch::Tensor& images) {
      save_grid_png(out / (name + ".png"), images, {.nrow = 5, .padding = 2, .upscale = 1, .lo = -1.0, .hi = 1.0});
      std::printf("  %s.png  (%lld image%s %lldx%lld)\n", name.c_str(), static_cast<long long>(images.size(0)),
                  images.size(0) == 1 ? "" : "s", static_cast<long long>(images.size(2)),
                  static_cast<long long>(images.size(3)));
    };
    // Stage I from pure noise at grid index 0; every run starts from the same seed.
    auto sample = [&](const auto& sampler, std::int64_t n) {
      Generator gen(seed);
      return sampler.sample(model, PureNoise<torch::Tensor>{torch::zeros({n, 3, 64, 64}, device)}, gen);
    };
    auto upscale = [&](const std::string& name, const torch::Tensor& images, const Prompt& p) {
      if (!stage2) return;
      Generator gen(seed);
      save(name + "_256", if_upscale(*stage2, images, p, null, gen));
    };

    // §0: three prompts at each step count, as IFPipeline samples them (γ = 7, "leading" grid),
    // then stage II (IFSuperResolutionPipeline: 50 steps, γ = 4, noise level 250).
    std::printf("§0 text to image\n");
    for (const std::string p : {"an oil painting of a snowy mountain village", "a man wearing a hat", "a rocket ship"})
      for (int n : steps) {
        const auto image = sample(if_stage1_sampler(SinglePrompt<Prompt>{prompt(p)}, null, gamma, DiffusionGrid::spaced(n)), 1);
        const auto name = "0_" + slug(p) + "_" + std::to_string(n) + "_steps";
        save(name, image);
        upscale(name, image, prompt(p));
      }

    // The rest uses the seed's strided grid 990, 960, …, 0 (§1.4).
    const auto grid = DiffusionGrid::strided();
    const Prompt photo = prompt("a high quality photo");
    std::printf("§1.5 sampling without guidance, §1.6 with CFG (gamma %.1f)\n", gamma);
    save("1_5_high_quality_photo", sample(Sampler{if_stage1_schedule(grid), NoGuidance{}, SinglePrompt<Prompt>{photo}}, samples));
    save("1_6_high_quality_photo_cfg", sample(if_stage1_sampler(SinglePrompt<Prompt>{photo}, null, gamma, grid), samples));

    std::printf("§1.8 visual anagrams (second prompt upside down)\n");
    const std::pair<std::string, std::string> anagrams[] = {
        {"an oil painting of an old man", "an oil painting of people around a campfire"},
        {"a photo of a hipster barista", "a photo of a dog"}};
    for (const auto& [upright, flipped] : anagrams) {
      const Anagram<Prompt> views({{prompt(upright), View::identity()}, {prompt(flipped), View::flip_vertical()}});
      const auto image = sample(if_stage1_sampler(views, null, gamma, grid), 1);
      save("1_8_anagram_" + slug(upright) + "__" + slug(flipped), torch::cat({image, image.flip({2})}));
    }

    std::printf("§1.9 hybrid images (low frequencies of the first prompt, high of the second)\n");
    const std::pair<std::string, std::string> hybrids[] = {
        {"a lithograph of a skull", "a lithograph of waterfalls"},
        {"a lithograph of a skull", "an oil painting of people around a campfire"}};
    for (const auto& [low, high] : hybrids) {
      const auto factorized = Factorized<Prompt>::hybrid(prompt(low), prompt(high), GaussianBlur(33, 2.0));
      save("1_9_hybrid_" + slug(low) + "__" + slug(high), sample(if_stage1_sampler(factorized, null, gamma, grid), 1));
    }
  } catch (const std::exception& e) {
    return examples::report_failure("deepfloyd_if", e);
  } catch (...) {
    return examples::report_failure("deepfloyd_if");
  }
  return 0;
}

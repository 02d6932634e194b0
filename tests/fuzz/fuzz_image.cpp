// libFuzzer target: load_image (stb_image behind our checks) on arbitrary bytes, as stored and
// converted + resized. Expected outcome: an image in [0, 1] or scoreflow::io_error.
#include "fuzz_common.hpp"
#include "scoreflow/torch/io/image_io.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = sffuzz::seed_dir()) {
    std::filesystem::create_directories(dir);
    const std::filesystem::path d = dir;
    scoreflow::save_png(d / "gray.png", torch::rand({1, 5, 3}));
    scoreflow::save_png(d / "rgba.png", torch::rand({4, 4, 6}));
    std::vector<unsigned char> jpg;
    const auto hwc = torch::randint(0, 256, {8, 8, 3}, torch::kUInt8);
    stbi_write_jpg_to_func([](void* ctx, void* p, int n) {
      auto* out = static_cast<std::vector<unsigned char>*>(ctx);
      out->insert(out->end(), static_cast<unsigned char*>(p), static_cast<unsigned char*>(p) + n);
    }, &jpg, 8, 8, 3, hwc.data_ptr<std::uint8_t>(), 80);
    sffuzz::write_file(d / "rgb.jpg", jpg.data(), jpg.size());
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = sffuzz::scratch("image");
  sffuzz::write_file(file, data, size);
  scoreflow::ImageLoadOptions as_stored;
  // Keep each execution small: decoding and resizing a megapixel image under ASan and coverage
  // instrumentation took ~15 ms, and the corpus drifts towards such images (60 executions/s after
  // an hour). The refusal check itself is what is tested, at any limit.
  as_stored.max_pixels = 1 << 16;
  sffuzz::expect_only<scoreflow::io_error>([&] {
    const auto image = scoreflow::load_image(file, as_stored);
    if (image.dim() != 4 || image.min().item<float>() < 0.0f || image.max().item<float>() > 1.0f) std::abort();
  });
  scoreflow::ImageLoadOptions converted = as_stored;
  converted.channels = 3;
  converted.height = converted.width = 8;
  sffuzz::expect_only<scoreflow::io_error>([&] { scoreflow::load_image(file, converted); });
  return 0;
}

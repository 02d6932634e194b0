// Issue 7: bad input never crashes and never loses data. One table of bad inputs, each run the
// same way: make the input in a fresh folder, snapshot the folder, call the API, and require
// (1) the documented exception type, (2) a message naming the file or parameter and saying what
// is wrong, (3) a folder in which nothing was written or changed (an output that existed before
// is byte-for-byte intact; only a temporary the case planted may have been cleaned up).
// A few rows are inputs that must be *handled* (alpha, 16-bit): they expect no exception.
//
// SCOREFLOW_BAD_INPUT_TABLE=<file> writes the table with the messages seen, as Markdown.
#include <doctest/doctest.h>

#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <typeinfo>
#include <vector>

#include "torch/model_helpers.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/interop/prompt_embeddings.hpp"
#include "scoreflow/torch/io/image_io.hpp"
#include "scoreflow/torch/io/loss_log.hpp"
#include "torch/data_helpers.hpp"

namespace test_bad_inputs {

using namespace scoreflow;
using sftest::Bytes;
namespace fs = std::filesystem;
namespace tr = scoreflow::training;

namespace {

// ---- input makers --------------------------------------------------------------------------

Bytes idx_file(unsigned char type, const std::vector<std::uint32_t>& dims, std::size_t payload_bytes) {
  Bytes b{0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims) sftest::put_be32(b, d);
  b.resize(b.size() + payload_bytes, 7);
  return b;
}

Bytes png_bytes(const torch::Tensor& chw) {
  sftest::TempDir tmp;
  save_png(tmp / "x.png", chw);
  return sftest::read_bytes(tmp / "x.png");
}

Bytes jpeg_bytes(std::int64_t h, std::int64_t w) {
  Bytes jpg;
  const auto hwc = torch::randint(0, 256, {h, w, 3}, torch::kUInt8);
  REQUIRE(stbi_write_jpg_to_func([](void* ctx, void* data, int size) {
            auto* out = static_cast<Bytes*>(ctx);
            out->insert(out->end(), static_cast<unsigned char*>(data), static_cast<unsigned char*>(data) + size);
          }, &jpg, static_cast<int>(w), static_cast<int>(h), 3, hwc.data_ptr<std::uint8_t>(), 90));
  return jpg;
}

Bytes cut(Bytes b, double fraction) {
  b.resize(static_cast<std::size_t>(static_cast<double>(b.size()) * fraction));
  return b;
}

/// A prompt-embeddings file with one entry "a" of the given dims (values all 0.5).
Bytes embeddings_file(const std::vector<std::int64_t>& dims) {
  Bytes b{'S', 'F', 'P', 'R', 'O', 'M', 'P', 'T'};
  const auto u32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
  };
  u32(1);  // version
  u32(1);  // entries
  u32(1);
  b.push_back('a');
  u32(static_cast<std::uint32_t>(dims.size()));
  std::int64_t n = 1;
  for (auto d : dims) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<unsigned char>(static_cast<std::uint64_t>(d) >> (8 * i)));
    n *= d;
  }
  for (std::int64_t i = 0; i < n; ++i) u32(0x3f000000u);
  return b;
}

using Net = models::UnconditionalUNet;
Net tiny_net(std::int64_t hidden) {
  torch::manual_seed(0);
  return Net(models::UNetOptions{.hidden = hidden});
}
tr::Trainer<Net, tr::Denoising> tiny_trainer(std::int64_t hidden) {
  return tr::Trainer<Net, tr::Denoising>(tiny_net(hidden), tr::Denoising{}, tr::TrainOptions{});
}
void write_checkpoint(const fs::path& file, std::int64_t hidden = 2) { tiny_trainer(hidden).save_checkpoint(file); }

/// A checkpoint laid out as save_checkpoint writes it, with the trainer entry `key` replaced by
/// `value` (the other entries hold a valid state): what a crafted or bit-flipped file can hold.
void write_doctored_checkpoint(const fs::path& file, const std::string& key, const torch::Tensor& value) {
  auto net = tiny_net(2);
  torch::optim::Adam adam(net->parameters());
  torch::serialize::OutputArchive archive, m, o, s;
  net->save(m);
  adam.save(o);
  const auto one = torch::tensor(std::int64_t{1});
  for (const char* k : {"step", "epoch", "batch_in_epoch"}) s.write(k, k == key ? value : one);
  s.write("seed", key == "seed" ? value : torch::tensor(std::int64_t{0}));  // TrainOptions' default seed
  s.write("epoch_loss_sum", key == "epoch_loss_sum" ? value : torch::tensor(0.5, torch::kDouble));
  s.write("rng", tr::TrainingRng(1).state());
  archive.write(tr::detail::kFormatKey, tr::detail::format_tag(tr::detail::kKindCheckpoint));
  archive.write("model", m);
  archive.write("optimizer", o);
  archive.write("trainer", s);
  archive.save_to(file.string());
}

/// Edits the data of the stored (uncompressed) zip entry whose name ends in `suffix`, in place
/// and at the same length; with fix_crc the CRC-32 in both headers is made to match again — what
/// a crafted file looks like, as opposed to a corrupt one.
void edit_zip_entry(const fs::path& file, const std::string& suffix, const std::function<void(std::string&)>& edit,
                    bool fix_crc) {
  auto b = sftest::read_bytes(file);
  const auto u = [&](std::size_t at, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b.at(at + i);
    return v;
  };
  const auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.at(at + i) = static_cast<unsigned char>(v >> (8 * i));
  };
  const std::size_t eocd = b.size() - 22;  // LibTorch writes no archive comment
  REQUIRE(u(eocd, 4) == 0x06054b50);
  for (std::size_t p = u(eocd + 16, 4), i = 0; i < u(eocd + 10, 2); ++i) {
    const auto name_len = u(p + 28, 2);
    const std::string name(b.begin() + static_cast<std::ptrdiff_t>(p + 46), b.begin() + static_cast<std::ptrdiff_t>(p + 46 + name_len));
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      REQUIRE(u(p + 10, 2) == 0);  // stored
      const auto local = u(p + 42, 4), size = u(p + 24, 4);
      const auto data = local + 30 + u(local + 26, 2) + u(local + 28, 2);
      std::string text(b.begin() + static_cast<std::ptrdiff_t>(data), b.begin() + static_cast<std::ptrdiff_t>(data + size));
      edit(text);
      REQUIRE(text.size() == size);
      std::copy(text.begin(), text.end(), b.begin() + static_cast<std::ptrdiff_t>(data));
      if (fix_crc) {
        const auto crc = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(size)));
        put32(p + 16, crc);
        put32(local + 14, crc);
      }
      sftest::write_bytes(file, b);
      return;
    }
    p += 46 + name_len + u(p + 30, 2) + u(p + 32, 2);
  }
  FAIL("no zip entry ends in " << suffix);
}

/// Makes `dir/name` a link to /dev/full, where every write fails with ENOSPC: a full disk.
void disk_full_at(const fs::path& path) { fs::create_symlink("/dev/full", path); }

// ---- sampler inputs (xtensor backend) --------------------------------------------------------

using Array = xt::xarray<double>;
Array proto() { return Array::from_shape({2, 1, 4, 4}); }
DiffusionSchedule<DDPMStep> seed_schedule() { return {NoiseSchedule::cosine(), DiffusionGrid::strided()}; }
template <class F>
void sample_flow(F velocity, int steps = 10) {
  Generator gen(1);
  auto model = denoiser(velocity, Parameterization::velocity);
  Sampler{FlowSchedule<Euler>{FlowGrid::uniform(steps)}}.sample(model, PureNoise<Array>{proto()}, gen);
}

// ---- the table -------------------------------------------------------------------------------

struct Expect {
  std::string type;  // empty: no exception (the input must be handled)
  std::function<bool(const std::exception&)> matches;
};
template <class E>
Expect raises(const char* name) {
  return {name, [](const std::exception& e) { return dynamic_cast<const E*>(&e) != nullptr; }};
}
const Expect handled{"", nullptr};

struct Case {
  const char* name;                                  // what is wrong with the input
  std::function<void(const fs::path&)> make;         // writes the input into the case folder
  std::function<void(const fs::path&)> act;          // the call under test
  Expect expect;
  std::vector<std::string> phrases;                  // "@x" stands for the path <case folder>/x
};

std::vector<Case> cases() {
  const auto w = [](const char* name, Bytes bytes) {
    return [name, bytes](const fs::path& d) { sftest::write_bytes(d / name, bytes); };
  };
  const auto io = raises<io_error>("io_error");
  const auto ckpt = raises<tr::checkpoint_error>("checkpoint_error");
  const auto opt = raises<invalid_option>("invalid_option");
  const auto shape = raises<shape_error>("shape_error");
  const auto nonfinite = raises<non_finite_error>("non_finite_error");
  const auto images28 = [](const fs::path& d) { write_idx(d / "images", torch::zeros({3, 28, 28}, torch::kByte)); };
  return {
      // IDX
      {"IDX missing", {}, [](const fs::path& d) { read_idx(d / "nope"); }, io, {"@nope", "no such file"}},
      {"IDX empty", w("x", {}), [](const fs::path& d) { read_idx(d / "x"); }, io, {"@x", "too short for an IDX header"}},
      {"IDX truncated data", w("x", cut(idx_file(0x08, {10, 28, 28}, 7840), 0.5)),
       [](const fs::path& d) { read_idx(d / "x"); }, io, {"@x", "truncated: the IDX header describes 7840 data bytes"}},
      {"IDX truncated header", w("x", {0, 0, 8, 3, 0, 0, 0, 1}), [](const fs::path& d) { read_idx(d / "x"); }, io,
       {"@x", "size of dimension 1 missing"}},
      {"IDX truncated gzip", [](const fs::path& d) {
         sftest::write_gzip(d / "full.gz", idx_file(0x08, {64, 64}, 4096));
         auto b = sftest::read_bytes(d / "full.gz");
         fs::remove(d / "full.gz");
         sftest::write_bytes(d / "x.gz", cut(b, 0.6));
       }, [](const fs::path& d) { read_idx(d / "x.gz"); }, io, {"@x.gz", "truncated"}},
      {"IDX wrong magic (a zip file)", w("x", {'P', 'K', 3, 4, 0, 0, 0, 0}), [](const fs::path& d) { read_idx(d / "x"); }, io,
       {"@x", "not an IDX file: magic starts with 0x50 0x4b"}},
      {"IDX unknown element type", w("x", idx_file(0x0A, {4}, 4)), [](const fs::path& d) { read_idx(d / "x"); }, io,
       {"@x", "unsupported IDX element type 0x0a"}},
      {"IDX rank 0", w("x", {0, 0, 8, 0}), [](const fs::path& d) { read_idx(d / "x"); }, io, {"@x", "0 dimensions"}},
      {"IDX rank 9", w("x", idx_file(0x08, {1, 1, 1, 1, 1, 1, 1, 1, 1}, 1)), [](const fs::path& d) { read_idx(d / "x"); }, io,
       {"@x", "9 dimensions; 1 to 4"}},
      {"IDX images file of rank 2", w("x", idx_file(0x08, {2, 3}, 6)), [](const fs::path& d) { read_idx_images(d / "x"); }, io,
       {"@x", "needs 3 (N,H,W) or 4 (N,C,H,W) dimensions, this one has 2"}},
      {"IDX dimension product overflows 64 bits", w("x", idx_file(0x08, {0x7fffffff, 0x7fffffff, 0x7fffffff}, 0)),
       [](const fs::path& d) { read_idx(d / "x"); }, io, {"@x", "overflow"}},
      {"IDX dimensions exceed the file (8 GB claimed)", w("x", idx_file(0x0E, {0x7fffffff, 1, 1}, 16)),
       [](const fs::path& d) { read_idx(d / "x"); }, io, {"@x", "more than the limit of"}},
      {"IDX dimensions exceed the file (under the limit)", w("x", idx_file(0x08, {1000, 28, 28}, 784)),
       [](const fs::path& d) { read_idx(d / "x"); }, io, {"@x", "784000 data bytes but the file has 784"}},
      {"IDX negative dimension", w("x", idx_file(0x08, {0xfffffff0u}, 0)), [](const fs::path& d) { read_idx(d / "x"); }, io,
       {"@x", "dimension 0 has size -16"}},
      {"IDX trailing garbage", w("x", idx_file(0x08, {3}, 5)), [](const fs::path& d) { read_idx(d / "x"); }, io,
       {"@x", "trailing garbage: 2 bytes"}},
      {"IDX labels/images count mismatch",
       [=](const fs::path& d) {
         images28(d);
         write_idx(d / "labels", torch::zeros({4}, torch::kByte));
       },
       [](const fs::path& d) { load_image_dataset(d / "images", d / "labels"); }, io,
       {"@images", "holds 3 images but", "@labels", "holds 4 labels"}},
      {"IDX negative label", w("labels", {0, 0, 0x09, 1, 0, 0, 0, 2, 1, 0xff}),
       [](const fs::path& d) { read_idx_labels(d / "labels"); }, io, {"@labels", "negative label -1"}},
      // images
      {"image missing", {}, [](const fs::path& d) { load_image(d / "x.png"); }, io, {"@x.png", "no such file"}},
      {"image empty", w("x.png", {}), [](const fs::path& d) { load_image(d / "x.png"); }, io, {"@x.png", "empty file"}},
      {"PNG truncated", [](const fs::path& d) { sftest::write_bytes(d / "x.png", cut(png_bytes(torch::rand({3, 32, 32})), 0.5)); },
       [](const fs::path& d) { load_image(d / "x.png"); }, io, {"@x.png", "corrupt or truncated"}},
      {"JPEG truncated", [](const fs::path& d) { sftest::write_bytes(d / "x.jpg", cut(jpeg_bytes(32, 32), 0.5)); },
       [](const fs::path& d) { load_image(d / "x.jpg"); }, io, {"@x.jpg", "corrupt or truncated"}},
      {"image file is text", w("x.png", Bytes{'h', 'e', 'l', 'l', 'o', '\n'}), [](const fs::path& d) { load_image(d / "x.png"); },
       io, {"@x.png", "not a readable image"}},
      {"PNG 0x0", w("x.png", sftest::make_png(0, 0, 8, 0, {}, 0)), [](const fs::path& d) { load_image(d / "x.png"); }, io,
       {"@x.png", "0×0 (0-pixel image)"}},
      {"PNG header claims 100000x100000", w("x.png", sftest::make_png(100000, 100000, 8, 0, {0}, 1)),
       [](const fs::path& d) { load_image(d / "x.png"); }, io, {"@x.png", "100000×100000: image too large"}},
      {"PNG header claims 2^31x2^31", w("x.png", sftest::make_png(0x7fffffffu, 0x7fffffffu, 8, 0, {0}, 1)),
       [](const fs::path& d) { load_image(d / "x.png"); }, io, {"@x.png", "2147483647×2147483647"}},
      {"JPEG 60000x60000 (header patched)",
       [](const fs::path& d) {
         auto jpg = jpeg_bytes(8, 8);
         // SOF0 segment: FF C0, length (2), precision (1), height (2), width (2).
         for (std::size_t i = 0; i + 8 < jpg.size(); ++i)
           if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
             jpg[i + 5] = 0xea, jpg[i + 6] = 0x60, jpg[i + 7] = 0xea, jpg[i + 8] = 0x60;
             break;
           }
         sftest::write_bytes(d / "x.jpg", jpg);
       },
       [](const fs::path& d) { load_image(d / "x.jpg"); }, io, {"@x.jpg", "60000×60000", "more than the limit"}},
      {"JPEG Huffman table of 272 codes (overflowed stb_image)",
       [](const fs::path& d) {
         auto jpg = jpeg_bytes(8, 8);
         for (std::size_t i = 0; i + 21 < jpg.size(); ++i)
           if (jpg[i] == 0xff && jpg[i + 1] == 0xc4) {  // DHT: FF C4, length (2), class/id (1), 16 counts
             for (std::size_t k = 0; k < 16; ++k) jpg[i + 5 + k] = 17;
             break;
           }
         sftest::write_bytes(d / "x.jpg", jpg);
       },
       [](const fs::path& d) { load_image(d / "x.jpg"); }, io, {"@x.jpg", "Huffman table with 272 codes"}},
      {"image in a format stb reads but we do not promise (binary PPM)",
       w("x.ppm", [] {
         const std::string header = "P6\n2 2\n255\n";
         Bytes b(header.begin(), header.end());
         b.resize(b.size() + 12, 128);
         return b;
       }()),
       [](const fs::path& d) { load_image(d / "x.ppm"); }, io, {"@x.ppm", "neither PNG nor JPEG", "starts 50 36 0a 32"}},
      {"JPEG scan using a Huffman table never defined (stb read it from uninitialised memory)",
       [](const fs::path& d) {
         auto jpg = jpeg_bytes(8, 8);
         for (std::size_t i = 0; i + 6 < jpg.size(); ++i)
           if (jpg[i] == 0xff && jpg[i + 1] == 0xda) {  // SOS: FF DA, length (2), Ns, (Cs, Td<<4|Ta)…
             jpg[i + 6] = 0x30 | (jpg[i + 6] & 0x0f);    // first component: DC table 3
             break;
           }
         sftest::write_bytes(d / "x.jpg", jpg);
       },
       [](const fs::path& d) { load_image(d / "x.jpg"); }, io, {"@x.jpg", "corrupt JPEG", "DC Huffman table 3, never defined"}},
      {"PNG with alpha (handled: composited on white)",
       w("x.png", sftest::make_png(1, 2, 8, 6, {10, 20, 30, 0, 10, 20, 30, 255}, 4)),
       [](const fs::path& d) {
         const auto rgba = load_image(d / "x.png");
         CHECK(rgba.sizes().vec() == std::vector<std::int64_t>{1, 4, 2, 1});
         const auto rgb = load_image(d / "x.png", {.channels = 3});
         CHECK(rgb[0][0][0][0].item<float>() == 1.0f);            // transparent: white
         CHECK(rgb[0][0][1][0].item<float>() == 10.0f / 255.0f);  // opaque: its colour
       },
       handled, {}},
      {"PNG 16-bit gray (handled: full precision)", w("x.png", sftest::make_png(1, 1, 16, 0, {0x12, 0x34}, 2)),
       [](const fs::path& d) { CHECK(load_image(d / "x.png").item<float>() == doctest::Approx(0x1234 / 65535.0).epsilon(1e-7)); },
       handled, {}},
      // checkpoints and weights
      {"checkpoint missing", {}, [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "does not exist"}},
      {"checkpoint truncated",
       [](const fs::path& d) {
         write_checkpoint(d / "full.pt");
         sftest::write_bytes(d / "c.pt", cut(sftest::read_bytes(d / "full.pt"), 0.7));
         fs::remove(d / "full.pt");
       },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "no end-of-central-directory record", "not an intact torch archive"}},
      {"checkpoint with one bit flipped in a weight", [](const fs::path& d) {
         write_checkpoint(d / "c.pt");
         edit_zip_entry(d / "c.pt", "/data/0", [](std::string& data) { data[1] ^= 0x10; }, /*fix_crc=*/false);
       },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "is corrupt", "/data/0' fails its CRC-32 check"}},
      {"checkpoint with a crafted class declaration (checksum right)", [](const fs::path& d) {
         write_checkpoint(d / "c.pt");
         // The shape of the input that crashed LibTorch's type parser under fuzzing.
         edit_zip_entry(d / "c.pt", "___torch_mangle_0.py", [](std::string& code) {
           const auto at = code.find("__parameters__ = [");
           REQUIRE(at != std::string::npos);
           code[at + 17] = '(';
         }, /*fix_crc=*/true);
       },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "unexpected line 2", "___torch_mangle_0.py"}},
      {"checkpoint of another configuration (hidden 2 vs 4)", [](const fs::path& d) { write_checkpoint(d / "c.pt", 2); },
       [](const fs::path& d) { tiny_trainer(4).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "parameter 'backbone.in_block.conv1.conv.weight' has shape [2, 1, 3, 3]", "[4, 1, 3, 3] in the model"}},
      {"weights of another model class", [](const fs::path& d) { write_checkpoint(d / "c.pt", 2); },
       [](const fs::path& d) {
         torch::manual_seed(0);
         models::TimeConditionalUNet other(models::UNetOptions{.hidden = 2});
         tr::load_weights(d / "c.pt", *other);
       },
       ckpt, {"@c.pt", "lacks the model's submodule", "different model configuration"}},
      {"checkpoint is a text file", w("c.pt", Bytes{'n', 'o', 'p', 'e'}),
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt, {"@c.pt", "too short to be a zip archive"}},
      {"checkpoint is a torch archive of something else",
       [](const fs::path& d) { torch::save(torch::ones({3}), (d / "c.pt").string()); },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt, {"@c.pt", "not a scoreflow checkpoint"}},
      {"checkpoint whose step is a vector", [](const fs::path& d) {
         write_doctored_checkpoint(d / "c.pt", "step", torch::tensor({std::int64_t{3}, std::int64_t{4}}));
       },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "'step'", "not a single int64", "2 elements"}},
      {"checkpoint whose loss sum is NaN", [](const fs::path& d) {
         write_doctored_checkpoint(d / "c.pt", "epoch_loss_sum", torch::tensor(std::nan(""), torch::kDouble));
       },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "impossible training state", "loss sum nan"}},
      {"checkpoint with a negative step", [](const fs::path& d) {
         write_doctored_checkpoint(d / "c.pt", "step", torch::tensor(std::int64_t{-3}));
       },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt,
       {"@c.pt", "impossible training state", "step -3"}},
      {"checkpoint is a weight file", [](const fs::path& d) { tr::save_weights(d / "c.pt", *tiny_net(2)); },
       [](const fs::path& d) { tiny_trainer(2).load_checkpoint(d / "c.pt"); }, ckpt, {"@c.pt", "weights only"}},
      // prompt embeddings
      {"embeddings of 76 tokens", w("p.sfemb", embeddings_file({1, 76, 8})),
       [](const fs::path& d) { PromptEmbeddings::load(d / "p.sfemb"); }, io, {"@p.sfemb", "prompt 'a'", "shape [1, 76, 8]"}},
      {"embeddings of rank 4", w("p.sfemb", embeddings_file({1, 1, 77, 8})),
       [](const fs::path& d) { PromptEmbeddings::load(d / "p.sfemb"); }, io, {"@p.sfemb", "rank 4"}},
      {"embeddings truncated", w("p.sfemb", cut(embeddings_file({77, 8}), 0.5)),
       [](const fs::path& d) { PromptEmbeddings::load(d / "p.sfemb"); }, io, {"@p.sfemb", "truncated"}},
      {"embeddings width 2^40 (allocation bomb)",
       [](const fs::path& d) {
         auto b = embeddings_file({77, 1});
         b[8 + 4 + 4 + 4 + 1 + 4 + 8 + 5] = 1;  // byte 5 of the width: D = 2^40 + 1
         sftest::write_bytes(d / "p.sfemb", b);
       },
       [](const fs::path& d) { PromptEmbeddings::load(d / "p.sfemb"); }, io, {"@p.sfemb", "1 ≤ D ≤ 2^20"}},
      {"embeddings file is not one", w("p.sfemb", Bytes(64, 'x')), [](const fs::path& d) { PromptEmbeddings::load(d / "p.sfemb"); },
       io, {"@p.sfemb", "no \"SFPROMPT\" magic"}},
      // sampler options
      {"CFG gamma NaN", {}, [](const fs::path&) { ClassifierFree<int>(std::nan(""), 0); }, opt, {"gamma = nan", "must be finite"}},
      {"CFG gamma inf", {}, [](const fs::path&) { ClassifierFree<int>(INFINITY, 0); }, opt, {"gamma = inf", "must be finite"}},
      {"blur sigma 0", {}, [](const fs::path&) { GaussianBlur(33, 0.0); }, opt, {"sigma = 0", "finite and positive"}},
      {"blur sigma -1", {}, [](const fs::path&) { GaussianBlur(33, -1.0); }, opt, {"sigma = -1", "finite and positive"}},
      {"i_start past the grid", {},
       [](const fs::path&) {
         Generator gen(1);
         auto model = denoiser([](const Array& x, Timestep, NoCondition) { return Array(0.0 * x); }, Parameterization::noise);
         Sampler{seed_schedule()}.sample(model, SDEdit<Array>{proto(), 40}, gen);
       },
       opt, {"i_start = 40", "must be below the last grid index 33"}},
      {"zero flow steps", {}, [](const fs::path&) { FlowGrid::uniform(0); }, opt, {"steps = 0", "must be positive"}},
      {"zero diffusion steps", {}, [](const fs::path&) { DiffusionGrid::spaced(0); }, opt, {"steps = 0", "must be positive"}},
      {"inpaint mask shape mismatch", {}, [](const fs::path&) { Inpaint<Array>(proto(), Array::from_shape({2, 1, 4, 5})); },
       shape, {"mask shape [2, 1, 4, 5]", "original image's shape [2, 1, 4, 4]"}},
      {"view whose inverse is not an inverse (repeated pixel)", {},
       [](const fs::path&) { View::permutation({0, 1, 1, 3}); }, opt, {"permutation[2] = 1", "no inverse"}},
      {"denoiser returns the wrong shape", {},
       [](const fs::path&) { sample_flow([](const Array& x, FlowTime, NoCondition) { return Array(ops::split_batch(x, 2)[0]); }); },
       shape, {"denoiser at step 1", "returned shape [ 1 1 4 4 ], expected [ 2 1 4 4 ]"}},
      {"denoiser returns NaN at step 4", {},
       [](const fs::path&) {
         sample_flow([](const Array& x, FlowTime t, NoCondition) {
           return Array(t.value > 0.25 ? ops::scale(std::nan(""), x) : x);
         });
       },
       nonfinite, {"denoiser at step 4 (t = 0.3", "non-finite"}},
      // outputs: a full disk or an unusable folder leaves the previous file intact
      {"checkpoint write on a full disk",
       [](const fs::path& d) {
         write_checkpoint(d / "c.pt");
         disk_full_at(d / "c.pt.tmp");
       },
       [](const fs::path& d) { tiny_trainer(2).save_checkpoint(d / "c.pt"); }, ckpt, {"@c.pt.tmp", "failed"}},
      {"checkpoint folder is a file", [](const fs::path& d) { sftest::write_bytes(d / "out", {1}); },
       [](const fs::path& d) { tiny_trainer(2).save_checkpoint(d / "out" / "c.pt"); }, ckpt, {"@out", "cannot create the directory"}},
      {"IDX write on a full disk",
       [](const fs::path& d) {
         write_idx(d / "x", torch::ones({4}, torch::kByte));
         disk_full_at(d / "x.tmp");
       },
       [](const fs::path& d) { write_idx(d / "x", torch::zeros({64, 64}, torch::kByte)); }, io, {"@x.tmp", "failed"}},
      {"gzip IDX write on a full disk",
       [](const fs::path& d) {
         write_idx(d / "x.gz", torch::ones({4}, torch::kByte));
         disk_full_at(d / "x.gz.tmp");
       },
       [](const fs::path& d) { write_idx(d / "x.gz", torch::rand({64, 64}).mul(255).to(torch::kByte)); }, io,
       {"@x.gz.tmp", "writing the gzip data failed"}},
      {"PNG write on a full disk",
       [](const fs::path& d) {
         save_png(d / "x.png", torch::zeros({1, 2, 2}));
         disk_full_at(d / "x.png.tmp");
       },
       [](const fs::path& d) { save_png(d / "x.png", torch::rand({3, 64, 64})); }, io, {"@x.png.tmp", "failed"}},
      {"embeddings write on a full disk",
       [](const fs::path& d) {
         sftest::write_bytes(d / "p.sfemb", embeddings_file({77, 8}));
         disk_full_at(d / "p.sfemb.tmp");
       },
       [](const fs::path& d) { PromptEmbeddings::load(d / "p.sfemb").save(d / "p.sfemb"); }, io, {"@p.sfemb.tmp", "failed"}},
      {"loss log whose folder is a file", [](const fs::path& d) { sftest::write_bytes(d / "out", {1}); },
       [](const fs::path& d) { LossLog log(d / "out" / "loss.csv"); }, io, {"@out/loss.csv", "cannot open for writing"}},
  };
}

/// Every entry of a folder: regular files by content, links by target (never followed: a link
/// to /dev/full would read forever), folders by name.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const auto rel = e.path().lexically_relative(dir).string();
    const auto st = fs::symlink_status(e.path());
    if (fs::is_symlink(st)) out[rel] = "link to " + fs::read_symlink(e.path()).string();
    else if (fs::is_regular_file(st)) {
      const auto b = sftest::read_bytes(e.path());
      out[rel] = std::string(b.begin(), b.end());
    } else out[rel] = "folder";
  }
  return out;
}

std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '|') c = ' ';
  return s;
}

}  // namespace

TEST_CASE_FIXTURE(sftest::SingleThread, "bad inputs: each is a clear exception, and nothing is written") {
  const auto table = cases();
  CHECK(table.size() >= 25);
  std::string markdown = "| # | input | expected | message |\n|---|---|---|---|\n";
  int number = 0;
  for (const auto& c : table) {
    const std::string name = c.name;
    CAPTURE(name);
    sftest::TempDir dir;
    if (c.make) c.make(dir.path());
    const auto before = snapshot(dir.path());
    std::string message, type = "none";
    try {
      c.act(dir.path());
      if (!c.expect.type.empty()) FAIL_CHECK("no exception; expected ", c.expect.type);
    } catch (const std::exception& e) {
      message = e.what();
      type = c.expect.type;
      INFO("message: ", message);
      if (c.expect.type.empty()) FAIL_CHECK("unexpected exception ", typeid(e).name());
      else CHECK_MESSAGE(c.expect.matches(e), "thrown type ", typeid(e).name(), ", expected ", c.expect.type);
      CHECK_MESSAGE(message.find('\n') == std::string::npos, "a message is one line");
      for (const auto& phrase : c.phrases) {
        const auto want = phrase.starts_with("@") ? (dir.path() / phrase.substr(1)).string() : phrase;
        CHECK_MESSAGE(message.find(want) != std::string::npos, "message lacks '", want, "'");
      }
    }
    // Nothing new or changed; only temporaries the case planted may have been removed.
    const auto after = snapshot(dir.path());
    for (const auto& [file, content] : after) {
      CAPTURE(file);
      const auto old = before.find(file);
      CHECK_MESSAGE(old != before.end(), "new file written");
      if (old != before.end()) CHECK_MESSAGE(old->second == content, "existing file changed");
    }
    for (const auto& [file, content] : before)
      if (!after.count(file)) CHECK_MESSAGE(file.ends_with(".tmp"), "file lost: ", file);
    markdown += "| " + std::to_string(++number) + " | " + c.name + " | " +
                (c.expect.type.empty() ? "handled" : c.expect.type) + " | " +
                (message.empty() ? "(loads)" : one_line(message)) + " |\n";
  }
  if (const char* out = std::getenv("SCOREFLOW_BAD_INPUT_TABLE")) std::ofstream(out) << markdown;
}
}  // namespace test_bad_inputs

// IDX reader/writer: exact byte layout, round trips of every element type (raw and gzip), and a
// clear io_error for every kind of malformed file.
#include <torch/types.h>

#include <filesystem>

#include "scoreflow/torch/data/idx.hpp"
#include "torch/data_helpers.hpp"

namespace test_idx {

using namespace scoreflow;
using sftest::Bytes;
using sftest::check_io_error;

namespace {
/// An IDX header: 00 00 type ndims, then big-endian int32 sizes.
Bytes idx_header(unsigned char type, const std::vector<std::uint32_t>& dims) {
  Bytes b{0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>((d >> s) & 0xff));
  return b;
}
Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
}  // namespace

TEST_CASE("idx: write_idx produces the exact MNIST byte layout") {
  sftest::TempDir dir;
  auto t = torch::tensor({1, 2, 3, 4, 5, 255}, torch::kByte).view({2, 3});
  write_idx(dir / "a-idx2-ubyte", t);
  CHECK(sftest::read_bytes(dir / "a-idx2-ubyte") ==
        Bytes{0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255});
  // Multi-byte elements are big-endian.
  write_idx(dir / "b", torch::tensor({0x0102, -2}, torch::kShort));
  CHECK(sftest::read_bytes(dir / "b") == Bytes{0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xff, 0xfe});
  write_idx(dir / "c", torch::tensor({1.0f}, torch::kFloat));  // 1.0f = 0x3f800000
  CHECK(sftest::read_bytes(dir / "c") == Bytes{0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3f, 0x80, 0, 0});
  CHECK_FALSE(std::filesystem::exists(dir / "c.tmp"));
}

TEST_CASE("idx: read_idx parses a hand-made file") {
  sftest::TempDir dir;
  sftest::write_bytes(dir / "m", concat(idx_header(0x08, {2, 1, 2}), {9, 8, 7, 6}));
  auto t = read_idx(dir / "m");
  CHECK(sftest::dtype_name(t) == "Byte");
  CHECK(t.sizes().vec() == std::vector<std::int64_t>{2, 1, 2});
  CHECK(t.flatten()[3].item<int>() == 6);
  sftest::write_bytes(dir / "i", concat(idx_header(0x0C, {2}), {0xff, 0xff, 0xff, 0xfb, 0, 1, 0, 0}));
  auto i = read_idx(dir / "i");
  CHECK(sftest::dtype_name(i) == "Int");
  CHECK(i[0].item<int>() == -5);
  CHECK(i[1].item<int>() == 65536);
}

TEST_CASE("idx: every element type round-trips, raw and gzip") {
  sftest::TempDir dir;
  const auto base = torch::arange(0, 2 * 3 * 4 * 5, torch::kDouble).view({2, 3, 4, 5}) * 1.25 - 40.0;
  for (auto dtype : {torch::kByte, torch::kChar, torch::kShort, torch::kInt, torch::kFloat, torch::kDouble}) {
    for (const char* name : {"x.idx", "x.idx.gz"}) {
      INFO("dtype ", sftest::dtype_name(dtype));
      CAPTURE(name);
      auto t = dtype == torch::kByte ? (base + 40.0).to(dtype) : base.to(dtype);
      write_idx(dir / name, t);
      auto back = read_idx(dir / name);
      CHECK(sftest::dtype_name(back) == sftest::dtype_name(dtype));
      CHECK(back.sizes().equals(t.sizes()));
      CHECK(torch::equal(back, t));
    }
  }
  // The .gz file really is gzip (magic 1f 8b), and smaller than raw for compressible data.
  write_idx(dir / "z.gz", torch::zeros({100, 28, 28}, torch::kByte));
  const auto gz = sftest::read_bytes(dir / "z.gz");
  REQUIRE(gz.size() > 2);
  CHECK(gz[0] == 0x1f);
  CHECK(gz[1] == 0x8b);
  CHECK(gz.size() < 100 * 28 * 28 / 10);
}

TEST_CASE("idx: images scale to [0,1] as [N,1,H,W]; labels become int64") {
  sftest::TempDir dir;
  auto raw = torch::tensor({0, 51, 255, 128, 0, 255, 1, 2}, torch::kByte).view({2, 2, 2});
  write_idx(dir / "img.gz", raw);
  auto images = read_idx_images(dir / "img.gz");
  CHECK(sftest::dtype_name(images) == "Float");
  CHECK(images.sizes().vec() == std::vector<std::int64_t>{2, 1, 2, 2});
  CHECK(images.flatten()[0].item<float>() == 0.0f);
  CHECK(images.flatten()[1].item<float>() == doctest::Approx(0.2));
  CHECK(images.flatten()[2].item<float>() == 1.0f);

  write_idx(dir / "lab", torch::tensor({3, 0, 9}, torch::kByte));
  auto labels = read_idx_labels(dir / "lab");
  CHECK(sftest::dtype_name(labels) == "Long");
  CHECK(torch::equal(labels, torch::tensor({3, 0, 9}, torch::kLong)));

  write_idx(dir / "f", torch::tensor({0.0f, 1.5f}).view({1, 1, 2}));
  check_io_error([&] { read_idx_images(dir / "f"); }, dir / "f", "[0, 1]");
  write_idx(dir / "flat", torch::zeros({4}, torch::kByte));
  check_io_error([&] { read_idx_images(dir / "flat"); }, dir / "flat", "dimensions");
  check_io_error([&] { read_idx_labels(dir / "img.gz"); }, dir / "img.gz", "1 dimension");
  write_idx(dir / "neg", torch::tensor({1, -1}, torch::kChar));
  check_io_error([&] { read_idx_labels(dir / "neg"); }, dir / "neg", "negative label -1");
  write_idx(dir / "fl", torch::tensor({1.0f}));
  check_io_error([&] { read_idx_labels(dir / "fl"); }, dir / "fl", "integers");
}

TEST_CASE("idx: malformed headers are refused with the file and the reason") {
  sftest::TempDir dir;
  struct Case {
    const char* name;
    Bytes bytes;
    const char* phrase;
  };
  const Bytes four{1, 2, 3, 4};
  const std::vector<Case> cases{
      {"empty", {}, "too short"},
      {"short", {0, 0, 8}, "too short"},
      {"magic", concat({0x50, 0x4b, 8, 1, 0, 0, 0, 1}, {7}), "magic starts with 0x50 0x4b"},
      {"type", concat(idx_header(0x0A, {4}), four), "unsupported IDX element type 0x0a"},
      {"ndims0", {0, 0, 8, 0}, "0 dimensions"},
      {"ndims5", concat(idx_header(0x08, {1, 1, 1, 1, 4}), four), "5 dimensions"},
      {"header_cut", {0, 0, 8, 3, 0, 0, 0, 1, 0, 0}, "dimension 1 missing"},
      {"dim0", concat(idx_header(0x08, {2, 0}), four), "dimension 1 has size 0"},
      {"dimneg", concat(idx_header(0x08, {0xffffffffu}), four), "dimension 0 has size -1"},
      {"overflow", idx_header(0x08, {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff}), "overflow"},
      {"huge", idx_header(0x0E, {0x7fffffff, 0x7fffffff}), "more than the limit"},
      {"truncated", concat(idx_header(0x08, {5}), four), "truncated"},
      {"trailing", concat(idx_header(0x08, {3}), four), "trailing garbage"},
      {"truncated16", concat(idx_header(0x0B, {2}), {0, 1, 0}), "truncated"},
  };
  for (const auto& c : cases) {
    for (bool gz : {false, true}) {
      CAPTURE(c.name);
      CAPTURE(gz);
      const auto path = dir / (std::string(c.name) + (gz ? ".gz" : ""));
      if (gz) sftest::write_gzip(path, c.bytes);
      else sftest::write_bytes(path, c.bytes);
      check_io_error([&] { read_idx(path); }, path, c.phrase);
    }
  }
  check_io_error([&] { read_idx(dir / "missing"); }, dir / "missing", "no such file");
}

TEST_CASE("idx: the byte limit applies to what the header claims, before reading") {
  sftest::TempDir dir;
  write_idx(dir / "x.gz", torch::zeros({10, 10}, torch::kByte));
  CHECK(read_idx(dir / "x.gz", 100).numel() == 100);
  check_io_error([&] { read_idx(dir / "x.gz", 99); }, dir / "x.gz", "more than the limit of 99");
  // A gzip file whose header claims 1 GB but holds 4 bytes: refused as truncated (the buffer
  // only grows with data actually inflated).
  sftest::write_gzip(dir / "liar.gz", concat(idx_header(0x08, {1000, 1000, 1000}), {1, 2, 3, 4}));
  check_io_error([&] { read_idx(dir / "liar.gz"); }, dir / "liar.gz", "decompressed file has 4");
}

TEST_CASE("idx: corrupt and cut-off gzip streams are reported as such") {
  sftest::TempDir dir;
  auto t = torch::randint(0, 256, {64, 64}, torch::kByte);  // incompressible, so a long deflate stream
  write_idx(dir / "ok.gz", t);
  const auto good = sftest::read_bytes(dir / "ok.gz");
  REQUIRE(good.size() > 200);

  // Without the 8-byte trailer (CRC32 + size) the data is complete but the stream is not.
  sftest::write_bytes(dir / "cut.gz", Bytes(good.begin(), good.end() - 8));
  check_io_error([&] { read_idx(dir / "cut.gz"); }, dir / "cut.gz", "truncated gzip stream");
  // Cut in the middle of the data.
  sftest::write_bytes(dir / "half.gz", Bytes(good.begin(), good.begin() + static_cast<long>(good.size() / 2)));
  check_io_error([&] { read_idx(dir / "half.gz"); }, dir / "half.gz", "truncated gzip stream");
  // A flipped CRC byte: the data inflates but does not match its checksum.
  auto bad_crc = good;
  bad_crc[bad_crc.size() - 6] ^= 0xff;
  sftest::write_bytes(dir / "crc.gz", bad_crc);
  check_io_error([&] { read_idx(dir / "crc.gz"); }, dir / "crc.gz", "corrupt gzip data");
}

TEST_CASE("idx: a failed write leaves the old file and no temporary behind") {
  sftest::TempDir dir;
  const auto target = dir / "keep";
  write_idx(target, torch::tensor({7}, torch::kByte));
  const auto before = sftest::read_bytes(target);
  CHECK_THROWS_AS(write_idx(target, torch::zeros({2, 0}, torch::kByte)), shape_error);
  CHECK_THROWS_AS(write_idx(target, torch::zeros({1, 1, 1, 1, 1}, torch::kByte)), shape_error);
  CHECK_THROWS_AS(write_idx(target, torch::zeros({2}, torch::kBool)), invalid_option);
  CHECK(sftest::read_bytes(target) == before);
  // The rename fails when the target is a non-empty directory: io_error, temporary removed.
  std::filesystem::create_directories(dir / "occupied" / "sub");
  std::filesystem::create_directories(dir / "occupied.gz" / "sub");
  check_io_error([&] { write_idx(dir / "occupied", torch::tensor({1}, torch::kByte)); }, dir / "occupied",
                 "cannot rename");
  check_io_error([&] { write_idx(dir / "occupied.gz", torch::tensor({1}, torch::kByte)); }, dir / "occupied.gz",
                 "cannot rename");
  CHECK_FALSE(std::filesystem::exists(dir / "occupied.tmp"));
  CHECK_FALSE(std::filesystem::exists(dir / "occupied.gz.tmp"));
  check_io_error([&] { write_idx(dir / "no" / "such" / "dir", torch::tensor({1}, torch::kByte)); },
                 dir / "no" / "such" / "dir.tmp", "cannot open for writing");
}

TEST_CASE("idx: the real Fashion-MNIST test set reads as 10000 images, 1000 per class") {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir / "t10k-labels-idx1-ubyte.gz")) {
    MESSAGE("Fashion-MNIST not installed at ", dir.string(), "; skipped");
    return;
  }
  auto images = read_idx_images(dir / "t10k-images-idx3-ubyte.gz");
  auto labels = read_idx_labels(dir / "t10k-labels-idx1-ubyte.gz");
  CHECK(images.sizes().vec() == std::vector<std::int64_t>{10000, 1, 28, 28});
  CHECK(images.min().item<float>() == 0.0f);
  CHECK(images.max().item<float>() == 1.0f);
  CHECK(torch::equal(torch::bincount(labels), torch::full({10}, 1000, torch::kLong)));
}
}  // namespace test_idx

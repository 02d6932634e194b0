#pragma once
// Shared by the data-layer tests (IDX, datasets, images, logs): scratch directories, raw byte
// files, and a check that an io_error names the file and says what is wrong.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/types.h>

#include "scoreflow/torch/io/io_error.hpp"


namespace sftest {

using Bytes = std::vector<unsigned char>;

/// dtype names for checks: doctest cannot print c10::ScalarType (c10's ADL toString returns
/// const char*, which breaks doctest's expression decomposition), so compare names instead.
inline std::string dtype_name(c10::ScalarType t) { return c10::toString(t); }
inline std::string dtype_name(const torch::Tensor& t) { return c10::toString(t.scalar_type()); }

/// A fresh directory under the system temp dir, removed (with its contents) at scope end.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("scoreflow_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline Bytes read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// `bytes` as a complete gzip file.
inline void write_gzip(const std::filesystem::path& path, const Bytes& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) > 0);
  REQUIRE(gzclose(gz) == Z_OK);
}

inline void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>((v >> s) & 0xff));
}
inline void png_chunk(Bytes& png, const char* type, const Bytes& data) {
  put_be32(png, static_cast<std::uint32_t>(data.size()));
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put_be32(png, static_cast<std::uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
}
/// A PNG made by hand (so that 16-bit, 0×0 and absurd sizes can be produced): `rows` are the
/// unfiltered scanlines, concatenated.
inline Bytes make_png(std::uint32_t width, std::uint32_t height, unsigned char depth, unsigned char color_type,
                      const Bytes& rows, std::size_t row_bytes) {
  Bytes png{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  Bytes ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {depth, color_type, 0, 0, 0});
  png_chunk(png, "IHDR", ihdr);
  Bytes raw;
  for (std::size_t r = 0; row_bytes > 0 && r < rows.size() / row_bytes; ++r) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), rows.begin() + static_cast<long>(r * row_bytes),
               rows.begin() + static_cast<long>((r + 1) * row_bytes));
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  Bytes z(size);
  REQUIRE(compress(z.data(), &size, raw.data(), static_cast<uLong>(raw.size())) == Z_OK);
  z.resize(size);
  png_chunk(png, "IDAT", z);
  png_chunk(png, "IEND", {});
  return png;
}
/// Runs `action`, which must throw scoreflow::io_error whose message names `file` and contains
/// `phrase`.
template <class Action>
void check_io_error(Action&& action, const std::filesystem::path& file, const std::string& phrase) {
  try {
    action();
    FAIL_CHECK("no io_error thrown; expected one containing '", phrase, "' for ", file.string());
  } catch (const scoreflow::io_error& e) {
    const std::string message = e.what();
    INFO("message: ", message);
    CHECK(message.find(file.string()) != std::string::npos);
    CHECK(message.find(phrase) != std::string::npos);
  }
}

}  // namespace sftest

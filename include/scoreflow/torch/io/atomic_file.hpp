#pragma once
// Whole-file reads with a size cap, and atomic writes.
//
// Writes go to `<path>.tmp` and are renamed over `<path>` only once complete: rename() within one
// directory is atomic on POSIX, so a crash, a full disk or an exception mid-write leaves either
// the old file or the new one, never a half-written file that a later run would take for data.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <system_error>
#include <vector>

#include "scoreflow/torch/io/io_error.hpp"

namespace scoreflow {

/// The temporary sibling an atomic write goes through.
inline std::filesystem::path temp_path_for(const std::filesystem::path& path) {
  auto tmp = path;
  tmp += ".tmp";
  return tmp;
}

/// Calls `write_tmp(tmp_path)`, which must create the complete file at tmp_path (by any means:
/// an ofstream, zlib, a child process), then renames it to `path`. If `write_tmp` throws or the
/// rename fails, the temporary is removed and `path` is left as it was.
template <class WriteTmp>
void write_atomically(const std::filesystem::path& path, WriteTmp&& write_tmp) {
  const auto tmp = temp_path_for(path);
  try {
    write_tmp(tmp);
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) detail::throw_io(path, "cannot rename the finished '", tmp.string(), "' into place: ", ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

/// Writes `bytes` to `path` atomically (see above).
inline void write_file_atomically(const std::filesystem::path& path, std::span<const unsigned char> bytes) {
  write_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) detail::throw_io(tmp, "cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();  // close() flushes; a full disk shows up here, not at the write
    if (!out) detail::throw_io(tmp, "writing ", bytes.size(), " bytes failed");
  });
}

/// The whole file, refusing (before allocating) files larger than `max_bytes`.
inline std::vector<unsigned char> read_file_bytes(const std::filesystem::path& path, std::uint64_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) detail::throw_io(path, "no such file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) detail::throw_io(path, "cannot get the size: ", ec.message());
  if (size > max_bytes) detail::throw_io(path, "file is ", size, " bytes, more than the limit of ", max_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::throw_io(path, "cannot open for reading");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) detail::throw_io(path, "read fewer bytes than its size ", size);
  return bytes;
}

}  // namespace scoreflow

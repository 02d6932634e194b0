#pragma once
// File-level failures of the data layer (IDX, images, logs, plots): missing or unreadable files,
// malformed headers, truncated data, failed writes. Every message starts with the file's path
// and then says what is wrong with it, so a user knows which file to fix or regenerate.
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

#include "scoreflow/errors.hpp"

namespace scoreflow {

struct io_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
/// `throw_io(path, "header says ", n, " images")` → io_error("'path': header says 42 images").
template <class... Parts>
[[noreturn]] void throw_io(const std::filesystem::path& file, Parts&&... parts) {
  throw io_error(concat("'", file.string(), "': ", std::forward<Parts>(parts)...));
}
}  // namespace detail
}  // namespace scoreflow

#pragma once
// LibTorch's errors as one line. c10::Error::what() appends a C++ backtrace of LibTorch's frames
// (dozens of lines); inside our messages that buries the reason and breaks one-line CLI errors.
#include <exception>
#include <string>

#include <c10/util/Exception.h>

namespace scoreflow::detail {

/// The reason only: c10::Error without its backtrace, newlines folded, at most ~2000 characters.
inline std::string torch_message(const std::exception& e) {
  std::string m;
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) m = c->what_without_backtrace();
  else m = e.what();
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  for (auto& ch : m)
    if (ch == '\n' || ch == '\r') ch = ' ';
  if (m.size() > 2000) m = m.substr(0, 2000) + " …";
  return m;
}

}  // namespace scoreflow::detail

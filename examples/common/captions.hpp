#pragma once
// Captions as data. Each part keeps its figures' section, title, file and caption in a table
// (part_a_captions.hpp, part_b_captions.hpp) beside the code that draws them; the code only fills
// in the numbers it configured or measured. A template names each blank ${name}.
#include <algorithm>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/report.hpp"

namespace examples {

/// A seed section's heading on the page.
struct SectionText {
  std::string_view section, title;
};
/// One figure's text; every field may hold ${blanks}.
struct FigureText {
  std::string_view section, title, image, caption;
};
/// One note (a written answer); title and text may hold ${blanks}.
struct NoteText {
  std::string_view section, title, text;
};

/// The values of a template's blanks: {{"gamma", fmt(m.gamma)}, ...}.
using Blanks = std::vector<std::pair<std::string_view, std::string>>;
using Numbers = std::vector<std::pair<std::string, std::string>>;

/// `text` with every ${name} replaced by its value; a blank without a value is a bug in the caller.
inline std::string fill(std::string_view text, const Blanks& blanks) {
  std::string out;
  std::size_t at = 0;
  for (auto open = text.find("${"); open != std::string_view::npos; open = text.find("${", at)) {
    const auto close = text.find('}', open);
    const auto key = text.substr(open + 2, close == std::string_view::npos ? close : close - open - 2);
    const auto value = std::find_if(blanks.begin(), blanks.end(), [&](const auto& b) { return b.first == key; });
    if (close == std::string_view::npos || value == blanks.end())
      throw std::logic_error("caption blank ${" + std::string(key) + "} has no value");
    out.append(text.substr(at, open - at)).append(value->second);
    at = close + 1;
  }
  return out.append(text.substr(at));
}

inline Figure figure(const FigureText& t, const Blanks& blanks = {}, Numbers numbers = {}) {
  return {fill(t.section, blanks), fill(t.title, blanks), fill(t.image, blanks), fill(t.caption, blanks), std::move(numbers)};
}
inline Note note(const NoteText& t, const Blanks& blanks = {}) {
  return {std::string(t.section), fill(t.title, blanks), fill(t.text, blanks)};
}
inline void section_titles(Report& report, std::span<const SectionText> sections) {
  for (const auto& s : sections) report.section_title(std::string(s.section), std::string(s.title));
}

}  // namespace examples

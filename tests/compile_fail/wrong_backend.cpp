// Compile-failure cases for the tensor extension point's fast paths (scoreflow/tensor/tensor.hpp):
// a fast path is used only when declared in `fast_paths`, and a declared one must exist — so a
// typo in a backend's specialisation is a compile error naming the operation, not a silent slow
// path. Without a case defined the file must compile (a backend that declares what it defines).
#include "scoreflow/core.hpp"

namespace {
struct Box {
  std::vector<double> v;
  scoreflow::Shape shape;
};
}  // namespace

template <>
struct scoreflow::tensor_traits<Box> {
#if defined(SCOREFLOW_CASE_FAST_PATH_DECLARED_NOT_DEFINED)
  static constexpr TensorFastPaths fast_paths{.axpby_randn = true};  // ... but spelt axpby_randm below
  static Box axpby_randm(double, const Box& x, double, const Box&, double, Generator&) { return x; }
#elif defined(SCOREFLOW_CASE_FAST_PATH_DEFINED_NOT_DECLARED)
  static Box axpby_randn(double, const Box& x, double, const Box&, double, Generator&) { return x; }
#else
  static constexpr TensorFastPaths fast_paths{.axpby_randn = true};
  static Box axpby_randn(double, const Box& x, double, const Box&, double, Generator&) { return x; }
#endif
  static Shape shape(const Box& x) { return x.shape; }
  static Box axpby(double, const Box& x, double, const Box&) { return x; }
  static Box scale(double, const Box& x) { return x; }
  static Box add_scalar(const Box& x, double) { return x; }
  static Box multiply(const Box& x, const Box&) { return x; }
  static Box exp(const Box& x) { return x; }
  static Box randn_like(const Box& x, Generator&) { return x; }
  static Box concat_batch(std::span<const Box> parts) { return parts[0]; }
  static std::vector<Box> split_batch(const Box& x, std::int64_t) { return {x}; }
  static std::pair<Box, Box> split_channels(const Box& x, std::int64_t) { return {x, x}; }
  static bool all_finite(const Box&) { return true; }
};

int main() {
  scoreflow::Generator gen(1);
  const Box x{{1.0}, {1}};
  return scoreflow::ops::axpby_randn(1.0, x, 0.0, x, 1.0, gen).v.size() == 1 ? 0 : 1;
}

#pragma once
// Where this process stands in a multi-process run, read from the environment variables that
// torchrun sets (PyTorch's "env://" convention, torch.distributed.init_process_group):
//   RANK, WORLD_SIZE        this process's rank among WORLD_SIZE processes
//   LOCAL_RANK              its rank on this machine (the GPU it takes), default RANK
//   MASTER_ADDR, MASTER_PORT where rank 0's rendezvous store listens
//   GLOO_SOCKET_IFNAME      the network interface Gloo uses (default: the one this host's name
//                           resolves to; 127.0.0.1 when MASTER_ADDR is a loopback address)
//   TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT
//                           set by torchrun: its agent already serves the store at
//                           MASTER_ADDR:MASTER_PORT, so rank 0 joins it as a client, under the
//                           key prefix "/worker/attempt_<restart count>" (as PyTorch 1.13's
//                           env:// rendezvous does).
// None of RANK and WORLD_SIZE set: one process (world_size 1). Anything malformed, half-set or
// out of range is an invalid_option naming the variable and its value.
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "scoreflow/errors.hpp"

namespace scoreflow::distributed {

struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string socket_ifname{};     ///< GLOO_SOCKET_IFNAME (empty: unset)
  bool agent_store = false;        ///< torchrun's agent serves the store (TORCHELASTIC_USE_AGENT_STORE=True)
  std::string store_prefix{};      ///< "/worker/attempt_<n>" under torchrun, else empty

  [[nodiscard]] bool is_distributed() const { return world_size > 1; }
};

namespace detail {
inline std::optional<long long> parse_integer(std::string_view text) {
  long long v = 0;
  const auto* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, v);
  if (text.empty() || r.ec != std::errc{} || r.ptr != end) return std::nullopt;
  return v;
}

inline int integer_variable(const std::function<std::optional<std::string>(const char*)>& lookup, const char* name,
                            long long lo, long long hi, const char* meaning) {
  const auto text = lookup(name);
  if (!text) throw invalid_option(scoreflow::detail::concat(name, " is not set (", meaning, ")"));
  const auto v = parse_integer(*text);
  if (!v) throw invalid_option(scoreflow::detail::concat(name, " = '", *text, "': not an integer (", meaning, ")"));
  if (*v < lo || *v > hi)
    throw invalid_option(scoreflow::detail::concat(name, " = ", *v, ": must lie in [", lo, ", ", hi, "] (", meaning, ")"));
  return static_cast<int>(*v);
}
}  // namespace detail

/// Reads the launch variables through `lookup` (name → value, nullopt when unset).
inline LaunchEnvironment launch_environment(const std::function<std::optional<std::string>(const char*)>& lookup) {
  LaunchEnvironment e;
  const bool has_rank = lookup("RANK").has_value(), has_world = lookup("WORLD_SIZE").has_value();
  if (!has_rank && !has_world) return e;  // a plain single-process run
  if (has_rank != has_world)
    throw invalid_option(std::string(has_rank ? "RANK" : "WORLD_SIZE") + " is set but " +
                         (has_rank ? "WORLD_SIZE" : "RANK") +
                         " is not: set both (torchrun does), or neither for one process");
  e.world_size = detail::integer_variable(lookup, "WORLD_SIZE", 1, 1 << 20, "the number of processes");
  e.rank = detail::integer_variable(lookup, "RANK", 0, e.world_size - 1,
                                    "this process's rank: 0 ≤ RANK < WORLD_SIZE");
  e.local_rank = lookup("LOCAL_RANK") ? detail::integer_variable(lookup, "LOCAL_RANK", 0, e.world_size - 1,
                                                                 "this process's rank on its machine")
                                      : e.rank;
  if (e.world_size == 1) return e;
  const auto addr = lookup("MASTER_ADDR");
  if (!addr || addr->empty())
    throw invalid_option("MASTER_ADDR is not set (the host of rank 0's rendezvous store; e.g. 127.0.0.1 on one machine)");
  e.master_addr = *addr;
  e.master_port = detail::integer_variable(lookup, "MASTER_PORT", 1, 65535, "the port of rank 0's rendezvous store");
  if (const auto ifname = lookup("GLOO_SOCKET_IFNAME")) e.socket_ifname = *ifname;
  if (const auto agent = lookup("TORCHELASTIC_USE_AGENT_STORE"); agent && *agent == "True") {
    e.agent_store = true;
    const auto attempt = lookup("TORCHELASTIC_RESTART_COUNT");
    e.store_prefix = "/worker/attempt_" + (attempt ? *attempt : std::string("0"));
  }
  return e;
}

/// Reads them from this process's environment.
inline LaunchEnvironment launch_environment() {
  return launch_environment([](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
}

}  // namespace scoreflow::distributed

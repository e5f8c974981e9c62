// fuzz_check: the check every libFuzzer target here uses. A failed check names itself and traps,
// so libFuzzer saves the input that led there.
#pragma once

#include <cstdio>

#define ACTNET_FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::actnet::fuzz::check_failed(#cond, __FILE__, __LINE__))
// For a place the input must never reach.
#define ACTNET_FUZZ_FAIL(what) ::actnet::fuzz::check_failed(what, __FILE__, __LINE__)

namespace actnet::fuzz {

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
  std::fflush(stderr);
  __builtin_trap();
}

}  // namespace actnet::fuzz

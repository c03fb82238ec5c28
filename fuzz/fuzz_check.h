// FUZZ_CHECK: an invariant check for fuzz targets that stays on in every build type.
//
// `assert` vanishes under NDEBUG, and libFuzzer builds are often optimized; a fuzz target
// exists to turn a broken invariant into a crash that the fuzzer records, so the check
// must never compile away. It names the file, line and condition on stderr, then aborts.
// Thread-safety: stateless.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                     \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

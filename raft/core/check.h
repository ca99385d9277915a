// Always-on assertions for broken invariants. A failed check is a bug: it
// prints where and why, then aborts. Expected outcomes (NotLeader, Busy) are
// values, never checks.
#pragma once

#include <cstdio>
#include <cstdlib>

#define RAFTKV_CHECK(cond)                                                                 \
  do {                                                                                     \
    if (!(cond)) [[unlikely]] {                                                            \
      std::fprintf(stderr, "%s:%d: RAFTKV_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

#define RAFTKV_CHECK_MSG(cond, msg)                                                            \
  do {                                                                                         \
    if (!(cond)) [[unlikely]] {                                                                \
      std::fprintf(stderr, "%s:%d: RAFTKV_CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   (msg));                                                                     \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

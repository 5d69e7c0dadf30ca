// A CPU loop over an index range [n0, n1) run through an AVX2 clone where the host has AVX2:
// the CPU passes' vector code (GCC's vector extensions, 8 lanes) then takes one 256-bit
// instruction per operation, elsewhere the same code compiled for the baseline. `flatten`
// inlines the whole loop body into the clone, so all of it is compiled for AVX2. Every lane
// is the same IEEE operation either way (no fused multiply-adds: -ffp-contract=off), so both
// give the same bits. Host only: nvcc never sees this code.
#pragma once

#include <stdint.h>

namespace dibr {

#if !defined(__CUDACC__) && defined(__x86_64__) && defined(__GNUC__)
#define DIBR_AVX2_CLONES 1

// The 8-lane vectors of the CPU passes (GCC's vector extensions; one AVX2 register).
constexpr int LANES8 = 8;
typedef float F8 __attribute__((vector_size(LANES8 * sizeof(float))));
typedef int32_t I8 __attribute__((vector_size(LANES8 * sizeof(int32_t))));

inline bool cpu_has_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}

inline bool cpu_has_avx2_fma() {
  static const bool ok = cpu_has_avx2() && __builtin_cpu_supports("fma");
  return ok;
}

template <class Body>
__attribute__((target("avx2"), flatten)) void avx2_range(int64_t n0, int64_t n1,
                                                        const Body& body) {
  for (int64_t n = n0; n < n1; ++n) body(n);
}
#endif

// body(n) for n in [n0, n1), in the AVX2 clone where the host has AVX2.
template <class Body>
inline void cpu_range(int64_t n0, int64_t n1, const Body& body) {
#if defined(DIBR_AVX2_CLONES)
  if (cpu_has_avx2()) return avx2_range(n0, n1, body);
#endif
  for (int64_t n = n0; n < n1; ++n) body(n);
}

}  // namespace dibr

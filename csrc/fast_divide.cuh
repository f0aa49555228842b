// Division of non-negative ints by a divisor fixed for a launch, as a multiply-high, an add and
// a shift (Granlund & Montgomery, "Division by invariant integers using multiplication", 1994).
// GPUs have no integer divider: a runtime `/` or `%` compiles to ~20 instructions, which the
// kernels' per-row page-table lookups would otherwise pay several times per row.
#pragma once

#include <cstdint>

namespace shadowkv {

struct FastDivide {
  uint32_t divisor = 1, multiplier = 1, shift = 0;

  FastDivide() = default;
  // d >= 1. shift = ceil(log2 d); multiplier = floor(2^32 (2^shift - d) / d) + 1.
  explicit FastDivide(int d) : divisor(uint32_t(d)) {
    while ((uint64_t(1) << shift) < divisor) ++shift;
    multiplier = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - divisor)) / divisor + 1);
  }

#ifdef __CUDACC__
  // Exact for 0 <= n < 2^31 (then the add cannot overflow).
  __device__ __forceinline__ int quotient(int n) const {
    return int((__umulhi(uint32_t(n), multiplier) + uint32_t(n)) >> shift);
  }
  __device__ __forceinline__ void divmod(int n, int& q, int& r) const {
    q = quotient(n);
    r = n - q * int(divisor);
  }
#endif
};

}  // namespace shadowkv

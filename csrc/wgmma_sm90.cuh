// Hopper warpgroup tensor-core multiply (wgmma, sm_90a only): a warpgroup of 4 warps multiplies
// a 64 x 16 tile of A by a 16 x N tile of B, both read from shared memory through 64-bit matrix
// descriptors, into float accumulators held in the warpgroup's registers. Unlike mma.sync it
// needs no ldmatrix: each operand tile is read once per warpgroup, not once per warp.
//
// Operands use two of the canonical layouts (PTX ISA, "Shared memory matrix layout"):
// - without swizzle ("interleaved"): the unit is the core matrix, 8 rows of 16 contiguous bytes
//   (128 bytes in a row); the descriptor's leading byte offset is the distance between core
//   matrices adjacent in K, its stride byte offset that between core matrices adjacent in M or N.
// - K-major with the 64-byte swizzle: atoms of 8 rows x 64 bytes (32 16-bit k), 512 bytes in a
//   row, whose 16-byte vectors are stored in the order vector ^ (row / 2 % 4); the stride byte
//   offset is the distance between atoms adjacent in M. The hardware takes the XOR from address
//   bits 7-8, so atoms must be 512-byte aligned; a k16 step within an atom starts 32 bytes on.
// A is K-major (each row of A holds consecutive k); B is N-major (each row of a core matrix holds
// 8 consecutive n of one k), which wgmma takes with its transpose-B flag.
//
// The accumulator layout of m64nNk16 is that of mma.m16n8k16 per warp: warp w of the warpgroup
// holds rows 16w .. 16w + 15, and d[4j + i] is n-tile j (columns 8j .. 8j + 7), rows g (i < 2)
// and g + 8, columns 2t + i % 2 (g = lane / 4, t = lane % 4): see mma_sm80.cuh.
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// Defined when the compilation targets sm_90a (TORCH_CUDA_ARCH_LIST 9.0a, nvcc -arch=sm_90a):
// wgmma exists only in that architecture-specific target, not in plain sm_90.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SHADOWKV_HAS_WGMMA 1
#else
#define SHADOWKV_HAS_WGMMA 0
#endif

namespace shadowkv {

// Descriptor of a no-swizzle operand tile starting at shared-memory byte address `address`.
// Fields (PTX ISA, "Matrix descriptor format"): bits 0-13 the address, 16-29 the leading byte
// offset, 32-45 the stride byte offset, all in 16-byte units; bits 62-63 the swizzle (0: none).
__device__ __forceinline__ uint64_t wgmma_descriptor(uint32_t address, uint32_t k_core_bytes,
                                                     uint32_t mn_core_bytes) {
  return uint64_t((address >> 4) & 0x3FFF) | (uint64_t((k_core_bytes >> 4) & 0x3FFF) << 16) |
         (uint64_t((mn_core_bytes >> 4) & 0x3FFF) << 32);
}

// Same for a K-major operand with the 64-byte swizzle (bits 62-63: 2). The leading byte offset
// is unused while the MMA's K (32 bytes) fits in a 64-byte row; the PTX ISA asks for 1.
__device__ __forceinline__ uint64_t wgmma_descriptor_swizzle64(uint32_t address,
                                                               uint32_t m_atom_bytes) {
  return uint64_t((address >> 4) & 0x3FFF) | (uint64_t(1) << 16) |
         (uint64_t((m_atom_bytes >> 4) & 0x3FFF) << 32) | (uint64_t(2) << 62);
}

// The functions below exist in every compilation so that code can name them in `if constexpr`
// branches; outside sm_90a their bodies trap (callers test SHADOWKV_HAS_WGMMA first).
#if SHADOWKV_HAS_WGMMA
#define SHADOWKV_SM90A_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SHADOWKV_SM90A_ASM(...) __trap()
#endif

// Makes this thread's earlier shared-memory writes (st.shared, cp.async) visible to the async
// proxy that wgmma reads through; then a barrier publishes them to the warpgroup.
__device__ __forceinline__ void fence_shared_for_async_proxy() {
  SHADOWKV_SM90A_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Orders the accumulator registers' earlier writes before the wgmma that read them.
__device__ __forceinline__ void wgmma_fence() {
  SHADOWKV_SM90A_ASM("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  SHADOWKV_SM90A_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until all committed wgmma of this warpgroup have finished (accumulators readable).
__device__ __forceinline__ void wgmma_wait_all() {
  SHADOWKV_SM90A_ASM("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}

// d += A (64 x 16, K-major) @ B (16 x 64, N-major), 16-bit inputs (T = __half or __nv_bfloat16).
template <typename T>
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[8][4], uint64_t a, uint64_t b) {
#define SHADOWKV_WGMMA_ACC                                                                   \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),   \
      "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]),             \
      "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),             \
      "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),             \
      "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]),             \
      "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
#define SHADOWKV_WGMMA_OPERANDS                                                              \
  " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "  \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, 1, 1, 1, 0, 1;\n"
  // Operands after the descriptors: accumulate (scale-d 1), A and B unnegated, A not
  // transposed (K-major), B transposed (N-major).
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    SHADOWKV_SM90A_ASM("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16"
                       SHADOWKV_WGMMA_OPERANDS : SHADOWKV_WGMMA_ACC : "l"(a), "l"(b));
  } else {
    static_assert(std::is_same_v<T, __half>, "wgmma_m64n64k16 takes __half or __nv_bfloat16");
    SHADOWKV_SM90A_ASM("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16"
                       SHADOWKV_WGMMA_OPERANDS : SHADOWKV_WGMMA_ACC : "l"(a), "l"(b));
  }
#undef SHADOWKV_WGMMA_OPERANDS
#undef SHADOWKV_WGMMA_ACC
}

#undef SHADOWKV_SM90A_ASM

}  // namespace shadowkv

// The [128 x rank] @ [rank x D] product at the heart of the key rebuild, accumulated in float over
// rank slices staged in shared memory (A: 128 x tile_rank coefficient rows, B: tile_rank x D basis
// rows). 16-bit inputs use tensor cores (WMMA, sm_80 and sm_90); float inputs use CUDA cores, so
// float keys are rebuilt in full float precision like the twin rather than in tf32.
#pragma once

#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

namespace shadowkv {

// 128 rows per tile, not 64: each rank slice of the basis (re-read from L2 by every tile) then
// serves twice the rows (H100, rank 1024: 29% -> 34% of HBM bandwidth; rank 160 unchanged at
// 31%, bound by the WMMA fragment loads and the RoPE epilogue: see docs/benchmarks.md).
constexpr int kTileRows = 128;  // token rows per tile, a 16-row strip per warp
constexpr int kTileThreads = 256;

// Rank columns per pipeline stage: 128 bytes of every coefficient row, so each row read is a
// whole 128-byte line rather than scattered 32-byte sectors.
template <typename T>
__host__ __device__ constexpr int tile_rank() { return 128 / int(sizeof(T)); }

// Shared-memory leading dimensions: one extra 16-byte vector per row spreads rows over banks and
// keeps every row 16-byte aligned for cp.async (and 32-byte aligned fragments for WMMA).
template <typename T>
__host__ __device__ constexpr int lda() { return tile_rank<T>() + 16 / int(sizeof(T)); }
template <typename T, int D>
__host__ __device__ constexpr int ldb() { return D + 16 / int(sizeof(T)); }
template <int D> __host__ __device__ constexpr int ldc() { return D + 4; }

template <typename T, int D>
struct TensorCoreTile {
  static_assert(D % 16 == 0 && kTileRows == 16 * (kTileThreads / 32), "one 16-row strip per warp");
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc[D / 16];

  __device__ void zero() {
#pragma unroll
    for (int n = 0; n < D / 16; ++n) nvcuda::wmma::fill_fragment(acc[n], 0.0f);
  }

  __device__ void step(const T* a, const T* b, int tile_rows) {
    using namespace nvcuda;
    const int warp = threadIdx.x >> 5;
    if (warp * 16 >= tile_rows) return;  // strip of padding rows: nothing to compute
#pragma unroll
    for (int kk = 0; kk < tile_rank<T>() / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
      wmma::load_matrix_sync(fa, a + warp * 16 * lda<T>() + kk * 16, lda<T>());
#pragma unroll
      for (int n = 0; n < D / 16; ++n) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
        wmma::load_matrix_sync(fb, b + kk * 16 * ldb<T, D>() + n * 16, ldb<T, D>());
        wmma::mma_sync(acc[n], fa, fb, acc[n]);
      }
    }
  }

  __device__ void store(float* c) const {
    const int warp = threadIdx.x >> 5;
#pragma unroll
    for (int n = 0; n < D / 16; ++n)
      nvcuda::wmma::store_matrix_sync(c + warp * 16 * ldc<D>() + n * 16, acc[n], ldc<D>(),
                                      nvcuda::wmma::mem_row_major);
  }
};

// Float path: thread t owns rows 8*(t/16) .. +8 and columns t%16 + 16*j.
template <int D>
struct SimtTile {
  static_assert(kTileRows == 8 * (kTileThreads / 16), "8-row groups x 16 column groups");
  static constexpr int kCols = D / 16;
  float acc[8][kCols];

  __device__ void zero() {
#pragma unroll
    for (int r = 0; r < 8; ++r)
#pragma unroll
      for (int j = 0; j < kCols; ++j) acc[r][j] = 0.0f;
  }

  __device__ void step(const float* a, const float* b, int tile_rows) {
    const int row0 = (threadIdx.x >> 4) * 8, col0 = threadIdx.x & 15;
    if (row0 >= tile_rows) return;
#pragma unroll 4
    for (int kk = 0; kk < tile_rank<float>(); ++kk) {
      float av[8], bv[kCols];
#pragma unroll
      for (int r = 0; r < 8; ++r) av[r] = a[(row0 + r) * lda<float>() + kk];
#pragma unroll
      for (int j = 0; j < kCols; ++j) bv[j] = b[kk * ldb<float, D>() + col0 + 16 * j];
#pragma unroll
      for (int r = 0; r < 8; ++r)
#pragma unroll
        for (int j = 0; j < kCols; ++j) acc[r][j] = fmaf(av[r], bv[j], acc[r][j]);
    }
  }

  __device__ void store(float* c) const {
    const int row0 = (threadIdx.x >> 4) * 8, col0 = threadIdx.x & 15;
#pragma unroll
    for (int r = 0; r < 8; ++r)
#pragma unroll
      for (int j = 0; j < kCols; ++j) c[(row0 + r) * ldc<D>() + col0 + 16 * j] = acc[r][j];
  }
};

template <typename T, int D>
using TileProduct = std::conditional_t<std::is_same_v<T, float>, SimtTile<D>, TensorCoreTile<T, D>>;

}  // namespace shadowkv

// The segments launch of landmark scoring on tensor cores, for 16-bit landmarks (score_chunks.cu
// has the float32 one and the normalize launch).
//
// Why: the CUDA-core version spends ~1400 instructions a warp on each 128-chunk tile (256 of them
// FFMA, the rest unpacking, shuffles, selects and addressing) and is issue-bound at ~45% of the
// HBM rate. Here one warp scores 16 landmark rows against the group's <= 8 queries with D / 16
// mma.m16n8k16 (rows as A, queries as the n = 8 columns of B, float accumulators).
//
// No shared memory staging: a dot product may sum its D terms in any order, so the k index of
// the mma is a permutation of the head dims chosen to match what 16-byte global loads deliver.
// With g = lane / 4 and t = lane % 4, lane (g, t) loads rows g and g + 8 of the 16, each at
// 16-byte vectors j * 4 + t (j < D / 32; the 4 lanes of a row read 64 contiguous bytes per load).
// Vector j's words .x .y .z .w hold dims 8 (4j + t) + {0,1}, {2,3}, {4,5}, {6,7}; k-step 2j takes
// .x as the A fragment's columns 2t..2t+1 and .y as 2t+8..2t+9, k-step 2j + 1 takes .z and .w.
// The B fragment wants the same (k, lane) pairs of the queries, so each lane holds query head g's
// same vectors: A and B agree on which dim every k is, whatever the permutation.
//
// A block is 8 warps and a segment of 8 * groups_per_warp groups of 16 chunks; each warp scores
// its groups with the next group's loads in flight, keeps its lanes' running (max, sum of exp)
// per query head in registers, and writes the float logits; the block merges its warps'
// statistics into one (max, sum) per query head for the normalize launch. Excluded chunk ids
// become a bitmap of the segment in shared memory, one bit test per row, and the segment's page
// ids are staged there too, so that no load waits on a page-table read from L2.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "mma_sm80.cuh"
#include "score_chunks_common.cuh"

namespace shadowkv {
namespace scoring {

constexpr int kMmaRows = 16;             // chunks one warp scores at a time
constexpr int kMaxGroupsPerWarp = 32;    // bounds the exclusion bitmap: 4096 chunks per block
constexpr int kMaxSegment = kMaxGroupsPerWarp * kWarps * kMmaRows;
// Page ids a segment may span (one more than a whole number of pages when it starts mid-page).
// Any segment fits at 2 landmark rows a page or more (head_rows hold 2 * block_size); the
// launcher keeps segments over pages of one row to half the size.
constexpr int kMaxPageIds = kMaxSegment / 2 + 1;

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 2)
    score_segments_mma_kernel(ScoreArgs a, int groups_per_warp) {
  constexpr int kVecs = D / 32;  // 16-byte vectors a lane loads from each of its two rows
  __shared__ uint32_t s_excluded[kMaxSegment / 32];
  __shared__ float2 s_stats[kWarps][kMaxGroup];
  __shared__ int32_t s_pages[kMaxPageIds];

  const int h = blockIdx.y, b = blockIdx.z;
  const int n_b = chunk_count(a, b);
  const int segment = kWarps * groups_per_warp * kMmaRows;
  const int seg0 = blockIdx.x * segment;
  if (seg0 >= n_b) return;
  const int seg_end = min(seg0 + segment, n_b);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;

  // The segment's landmark page ids, staged once: a row's load then waits for a shared-memory
  // read, not for a page-table round trip to L2 before every group.
  const int col0 = seg0 / a.rows_per_page;
  const int cols = (seg_end - 1) / a.rows_per_page - col0 + 1;
  const int32_t* pages = a.pages + int64_t(b) * a.page_cols + col0;
  for (int i = threadIdx.x; i < cols; i += kThreads) s_pages[i] = __ldg(pages + i);
  for (int i = threadIdx.x; i < segment / 32; i += kThreads) s_excluded[i] = 0u;

  // B fragments: query head g of the group (zeros past the group), this lane's vectors.
  uint32_t qb[kVecs][4];
  {
    const T* q = static_cast<const T*>(a.q) + b * a.q_batch_stride +
                 (h * a.group + g) * a.q_head_stride;
#pragma unroll
    for (int j = 0; j < kVecs; ++j)
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const int d = 8 * (4 * j + t) + 2 * w;
        if (g < a.group) {
          const T lo = q[d * a.q_dim_stride], hi = q[(d + 1) * a.q_dim_stride];
          qb[j][w] = uint32_t(*reinterpret_cast<const uint16_t*>(&lo)) |
                     uint32_t(*reinterpret_cast<const uint16_t*>(&hi)) << 16;
        } else {
          qb[j][w] = 0u;
        }
      }
  }
  __syncthreads();  // page ids staged, bitmap cleared

  // The exclusion bitmap of [seg0, seg_end); ids elsewhere are ignored.
  {
    const char* ex = static_cast<const char*>(a.excluded) +
                     (b * a.excluded_batch_stride + h * a.excluded_head_stride) *
                         a.excluded_itemsize;
    for (int x = threadIdx.x; x < a.num_excluded; x += kThreads) {
      const int64_t id = a.excluded_itemsize == 8 ? reinterpret_cast<const int64_t*>(ex)[x]
                                                  : reinterpret_cast<const int32_t*>(ex)[x];
      if (id >= seg0 && id < seg_end) {
        const int i = static_cast<int>(id - seg0);
        atomicOr(&s_excluded[i >> 5], 1u << (i & 31));
      }
    }
  }

  const char* head = static_cast<const char*>(a.landmarks) + h * a.head_stride * sizeof(T);
  const int first = seg0 + warp * groups_per_warp * kMmaRows;  // this warp's first chunk
  const int groups = max(0, min(groups_per_warp, (seg_end - first + kMmaRows - 1) / kMmaRows));

  // Rows g and g + 8 of group i: the lane's kVecs vectors of each, zeros past the sequence.
  auto load = [&](uint4 (&rows)[2][kVecs], int i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int chunk = first + i * kMmaRows + g + 8 * half;
      if (chunk < seg_end) {
        const int col = chunk / a.rows_per_page;
        const int page = s_pages[col - col0];
        const int row = chunk - col * a.rows_per_page;
        const uint4* src = reinterpret_cast<const uint4*>(
            head + (page * a.page_stride + row * a.row_stride) * int64_t(sizeof(T)));
#pragma unroll
        for (int j = 0; j < kVecs; ++j) rows[half][j] = __ldg(src + 4 * j + t);
      } else {
#pragma unroll
        for (int j = 0; j < kVecs; ++j) rows[half][j] = make_uint4(0, 0, 0, 0);
      }
    }
  };

  const float scale = rsqrtf(float(D));
  const Workspace w = workspace(a, segment);
  const int64_t row0 = (int64_t(b) * a.heads + h) * a.group;  // workspace row of query head 0
  float2 stats[2] = {make_float2(kNegInf, 0.f), make_float2(kNegInf, 0.f)};  // heads 2t, 2t+1

  auto score = [&](const uint4 (&rows)[2][kVecs], int i) {
    float c[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const uint32_t lo[4] = {rows[0][j].x, rows[1][j].x, rows[0][j].y, rows[1][j].y};
      mma_16816<T>(c, lo, qb[j][0], qb[j][1]);
      const uint32_t hi[4] = {rows[0][j].z, rows[1][j].z, rows[0][j].w, rows[1][j].w};
      mma_16816<T>(c, hi, qb[j][2], qb[j][3]);
    }
    // c[2 * half + e]: chunk first + 16 i + g + 8 half, query head 2t + e.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int chunk = first + i * kMmaRows + g + 8 * half;
      const int bit = chunk - seg0;
      const bool live = chunk < seg_end && !(s_excluded[bit >> 5] >> (bit & 31) & 1u);
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int n = 2 * t + e;
        const float x = live ? c[2 * half + e] * scale : kNegInf;
        c[2 * half + e] = x;
        if (n < a.group && chunk < seg_end) w.logits[(row0 + n) * a.max_chunks + chunk] = x;
      }
    }
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const float m = fmaxf(stats[e].x, fmaxf(c[e], c[2 + e]));
      if (m == kNegInf) continue;
      if (m != stats[e].x) stats[e].y *= expf(stats[e].x - m);  // exp(-inf) = 0 at the start
      stats[e].x = m;
      stats[e].y += expf(c[e] - m) + expf(c[2 + e] - m);
    }
  };

  if constexpr (D <= 128) {
    // Two register buffers in turn: group i + 1 loads while group i is scored. The first loads
    // are in flight while the bitmap is completed.
    uint4 even[2][kVecs], odd[2][kVecs];
    if (groups > 0) load(even, 0);
    __syncthreads();
    for (int i = 0; i < groups; i += 2) {
      if (i + 1 < groups) load(odd, i + 1);
      score(even, i);
      if (i + 1 >= groups) break;
      if (i + 2 < groups) load(even, i + 2);
      score(odd, i + 1);
    }
  } else {
    // At D = 256 two buffers would need 128 registers: one group at a time, twice the bytes each.
    uint4 rows[2][kVecs];
    __syncthreads();  // the bitmap is complete
    for (int i = 0; i < groups; ++i) {
      load(rows, i);
      score(rows, i);
    }
  }

  // Merge over the 8 lanes of each t (the rows), then over the warps.
#pragma unroll
  for (int o = 4; o < 32; o <<= 1)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const float2 other = make_float2(__shfl_xor_sync(0xffffffffu, stats[e].x, o),
                                       __shfl_xor_sync(0xffffffffu, stats[e].y, o));
      stats[e] = merge_softmax_stats(stats[e], other);
    }
  if (g == 0) {
    s_stats[warp][2 * t] = stats[0];
    s_stats[warp][2 * t + 1] = stats[1];
  }
  __syncthreads();
  if (threadIdx.x < a.group) {
    float2 block = make_float2(kNegInf, 0.f);
#pragma unroll
    for (int v = 0; v < kWarps; ++v) block = merge_softmax_stats(block, s_stats[v][threadIdx.x]);
    w.partial[(row0 + threadIdx.x) * w.segments + blockIdx.x] = block;
  }
}

}  // namespace scoring
}  // namespace shadowkv

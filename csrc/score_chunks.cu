// Landmark scoring read in place from the landmark pages: per query head a softmax over the
// chunk landmarks of its KV head (logits q.k / sqrt(D) in float32, excluded chunks at -inf), then
// the maximum over the query heads of each GQA group. Twin: score_chunks_paged_torch in
// shadowkv_engine/ops/chunk_scores.py.
//
// Two launches, because a softmax needs the whole row's max and sum before any output:
//  1. segments: block = one (sequence, KV head) and a segment of chunks. Each landmark row is read
//     once and dotted with all G query heads of its group; the block writes the float logits and
//     its segment's (max, sum of exp) per query head to the workspace. 16-bit landmarks go
//     through tensor cores (score_segments_mma.cuh), float32 ones through the CUDA-core
//     kernel below: tiles of 32 KiB of 16-byte loads (16 KiB with 8
//     query heads per KV head), copied with cp.async into a ring of 3 tiles in shared memory
//     (2 where two blocks of 3 do not fit on a SM), so that the next tiles' loads are in flight
//     while one is scored.
//  2. normalize: block = one (sequence, KV head) and a tile of chunks. It folds the segments'
//     (max, sum) into the row's, then writes max_g exp(logit - max_g) / sum_g, and -inf for
//     excluded chunks and past the sequence's chunk count (so top-k never selects them, while a
//     chunk whose probability underflows to 0 stays selectable).
// The logits cost 4*G bytes per chunk and head, against 2*D bytes of landmark (6% at D=128, G=4),
// and are still in L2 when the second launch reads them.
// Measured on an H200 at 32K context, batch 8 (docs/benchmarks.md): the segments launch read the
// 67 MB of landmarks of a layer in 33 us on CUDA cores (issue-bound by its instruction count),
// in 23 us on tensor cores.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cp_async.cuh"
#include "float_convert.cuh"
#include "launchers.h"
#include "score_chunks_common.cuh"
#include "score_segments_mma.cuh"

namespace shadowkv {
namespace {

using namespace scoring;

constexpr int kTile = 512;  // chunks per block in the normalize launch
constexpr int kChunksPerThread = kTile / kThreads;

// How a tile of landmark rows (D elements of T each) maps onto a block: each lane takes kVecs
// 16-byte vectors of a row, kLanes lanes a row (a power of two from 8 to 32), kRowsPerWarp rows
// per warp load, and each thread kPasses rows of a tile, all loaded before the first is used.
// With the queries of GM heads in registers, GM = 8 takes half as many rows in flight.
template <typename T, int D, int GM>
struct RowMap {
  static constexpr int kElems = 16 / sizeof(T);
  static constexpr int kRowVecs = D / kElems;
  static constexpr int kLanes = kRowVecs < 32 ? kRowVecs : 32;
  static constexpr int kVecs = kRowVecs / kLanes;
  static constexpr int kRowsPerWarp = 32 / kLanes;
  static constexpr int kRowsPerPass = kWarps * kRowsPerWarp;
  static constexpr int kLoads = GM >= 8 ? 4 : 8;  // 16-byte loads per thread and tile
  static constexpr int kPasses = kLoads / kVecs;
  static constexpr int kTileRows = kRowsPerPass * kPasses;
};

// The 16 bytes of v as floats.
template <typename T>
__device__ __forceinline__ void unpack(const uint4& v, float* out);
template <> __device__ __forceinline__ void unpack<float>(const uint4& v, float* out) {
  out[0] = __uint_as_float(v.x); out[1] = __uint_as_float(v.y);
  out[2] = __uint_as_float(v.z); out[3] = __uint_as_float(v.w);
}
// Sums acc[0..GM) over the kLanes lanes of a row, scattering the results: afterwards acc[0] of a
// lane holds the full sum for query head (lane % kLanes) / (kLanes / GM). Each halving step
// trades half of the values still held, so G sums cost GM - 1 + log2(kLanes / GM) shuffles
// instead of G * log2(kLanes).
template <int GM, int kLanes>
__device__ __forceinline__ void reduce_scatter(float (&acc)[GM], int lane) {
  int width = GM;
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) {
    if (width > 1) {
      const bool upper = lane & o;
#pragma unroll
      for (int i = 0; i < GM / 2; ++i) {
        if (i < width / 2) {
          const float send = upper ? acc[i] : acc[i + width / 2];
          const float keep = upper ? acc[i + width / 2] : acc[i];
          acc[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
        }
      }
      width /= 2;
    } else {
      acc[0] += __shfl_xor_sync(0xffffffffu, acc[0], o);
    }
  }
}

// Bytes of one tile's landmarks in shared memory (one stage of the load ring).
template <typename T, int D, int GM>
constexpr int stage_bytes() { return kThreads * RowMap<T, D, GM>::kLoads * 16; }

template <typename T, int D, int GM, int kStages>
__global__ void __launch_bounds__(kThreads, 2)
    score_segments_kernel(ScoreArgs a, int tiles_per_block) {
  using M = RowMap<T, D, GM>;
  // The landmark loads go through a ring of kStages tiles in shared memory (cp.async), so that
  // kStages - 1 tiles are in flight while one is scored: with one tile ahead in registers, as
  // before, the kernel waited on memory latency at half the HBM rate. Each thread reads back only
  // the 16-byte vectors it copied itself, so its own cp.async wait is all the ordering needed.
  extern __shared__ uint4 ring[];  // [kStages][kLoads][kThreads]
  __shared__ __align__(16) float s_q[GM * D];
  __shared__ float s_logits[2][GM][M::kTileRows];  // two, so one barrier per tile is saved

  const int h = blockIdx.y, b = blockIdx.z;
  const int n_b = chunk_count(a, b);
  const int seg0 = blockIdx.x * tiles_per_block * M::kTileRows;
  if (seg0 >= n_b) return;
  const int tiles = min(tiles_per_block, (n_b - seg0 + M::kTileRows - 1) / M::kTileRows);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int sub = lane % M::kLanes;  // this lane's place in its row
  const int row_in_pass = warp * M::kRowsPerWarp + lane / M::kLanes;

  // The thread's rows are kRowsPerPass apart: a cursor steps through the page table instead of
  // dividing by rows_per_page for every row. A tile's page ids are all loaded before any row, so
  // that the rows' loads wait for one round trip, not one per row.
  const char* head = static_cast<const char*>(a.landmarks) + h * a.head_stride * sizeof(T);
  const int32_t* pages = a.pages + int64_t(b) * a.page_cols;
  int next = seg0 + row_in_pass;
  int col = next / a.rows_per_page, row = next - col * a.rows_per_page;
  auto slot = [&](int stage, int p, int v) -> uint4& {
    return ring[(stage * M::kLoads + p * M::kVecs + v) * kThreads + threadIdx.x];
  };
  auto load_tile = [&](int stage) {
    int page[M::kPasses], page_row[M::kPasses];
#pragma unroll
    for (int p = 0; p < M::kPasses; ++p) {
      page[p] = next + p * M::kRowsPerPass < n_b ? __ldg(pages + col) : 0;
      page_row[p] = row;
      for (row += M::kRowsPerPass; row >= a.rows_per_page; row -= a.rows_per_page) ++col;
    }
#pragma unroll
    for (int p = 0; p < M::kPasses; ++p) {
      if (next + p * M::kRowsPerPass < n_b) {
        const uint4* src = reinterpret_cast<const uint4*>(
            head + (page[p] * a.page_stride + page_row[p] * a.row_stride) * sizeof(T));
#pragma unroll
        for (int v = 0; v < M::kVecs; ++v) cp_async16(&slot(stage, p, v), src + sub + 32 * v, 16);
      } else {
#pragma unroll
        for (int v = 0; v < M::kVecs; ++v) slot(stage, p, v) = make_uint4(0, 0, 0, 0);
      }
    }
    next += M::kPasses * M::kRowsPerPass;
  };
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {  // one commit group per tile, empty past the last
    if (t < tiles) load_tile(t);
    cp_async_commit();
  }

  // Excluded ids: the first kThreads stay in registers (one each) for all tiles.
  const char* ex = static_cast<const char*>(a.excluded) +
                   (b * a.excluded_batch_stride + h * a.excluded_head_stride) * a.excluded_itemsize;
  auto excluded_id = [&](int x) -> int64_t {
    return a.excluded_itemsize == 8 ? reinterpret_cast<const int64_t*>(ex)[x]
                                    : reinterpret_cast<const int32_t*>(ex)[x];
  };
  const int64_t my_excluded = threadIdx.x < a.num_excluded ? excluded_id(threadIdx.x) : -1;

  // The group's queries as floats (zeros for the heads past G), from any strides.
  const T* q = static_cast<const T*>(a.q) + b * a.q_batch_stride;
  for (int i = threadIdx.x; i < GM * D; i += kThreads) {
    const int g = i / D, d = i - g * D;
    s_q[i] = g < a.group ? to_float(q[(h * a.group + g) * a.q_head_stride + d * a.q_dim_stride])
                         : 0.f;
  }
  __syncthreads();
  float qf[GM][M::kVecs][M::kElems];
#pragma unroll
  for (int g = 0; g < GM; ++g)
#pragma unroll
    for (int v = 0; v < M::kVecs; ++v)
#pragma unroll
      for (int e = 0; e < M::kElems; e += 4) {
        const float4 x =
            *reinterpret_cast<const float4*>(&s_q[g * D + (sub + 32 * v) * M::kElems + e]);
        qf[g][v][e] = x.x; qf[g][v][e + 1] = x.y; qf[g][v][e + 2] = x.z; qf[g][v][e + 3] = x.w;
      }

  const float scale = rsqrtf(float(D));
  constexpr int kLanesPerHead = M::kLanes / GM;
  const int g_lane = sub / kLanesPerHead;
  const Workspace w = workspace(a, tiles_per_block * M::kTileRows);
  const int64_t out_row = (int64_t(b) * a.heads + h) * a.group + warp;  // warp g takes head g
  float run_max = kNegInf, run_sum = 0.f;

  auto score_tile = [&](int stage, int t) {
    float(*logits)[M::kTileRows] = s_logits[t & 1];
    const int tile0 = seg0 + t * M::kTileRows;
#pragma unroll
    for (int p = 0; p < M::kPasses; ++p) {
      float acc[GM];
#pragma unroll
      for (int g = 0; g < GM; ++g) acc[g] = 0.f;
#pragma unroll
      for (int v = 0; v < M::kVecs; ++v) {
        float x[M::kElems];
        unpack<T>(slot(stage, p, v), x);
#pragma unroll
        for (int g = 0; g < GM; ++g)
#pragma unroll
          for (int e = 0; e < M::kElems; ++e) acc[g] = fmaf(qf[g][v][e], x[e], acc[g]);
      }
      reduce_scatter<GM, M::kLanes>(acc, sub);
      const int i = p * M::kRowsPerPass + row_in_pass;
      if (sub % kLanesPerHead == 0 && g_lane < a.group)
        logits[g_lane][i] = tile0 + i < n_b ? acc[0] * scale : kNegInf;
    }
    __syncthreads();
    // Excluded chunks drop out of the softmax; ids outside [0, n_b) are ignored.
    const int tile_end = min(tile0 + M::kTileRows, n_b);
    auto exclude = [&](int64_t id) {
      if (id >= tile0 && id < tile_end)
        for (int g = 0; g < a.group; ++g) logits[g][id - tile0] = kNegInf;
    };
    exclude(my_excluded);
    for (int x = threadIdx.x + kThreads; x < a.num_excluded; x += kThreads) exclude(excluded_id(x));
    __syncthreads();
    if (warp < a.group) {  // fold the tile into the running (max, sum of exp) of head `warp`
      float m = kNegInf;
#pragma unroll
      for (int i = lane; i < M::kTileRows; i += 32) m = fmaxf(m, logits[warp][i]);
      m = warp_max(m);
      float s = 0.f;
      float* out = w.logits + out_row * a.max_chunks + tile0;
      for (int i = lane; i < tile_end - tile0; i += 32) {
        const float x = logits[warp][i];
        if (m != kNegInf) s += expf(x - m);
        out[i] = x;
      }
      s = warp_sum(s);
      if (m != kNegInf) {
        const float new_max = fmaxf(run_max, m);
        run_sum = run_sum * expf(run_max - new_max) + s * expf(m - new_max);
        run_max = new_max;
      }
    }
  };

  for (int t = 0; t < tiles; ++t) {
    // The stage of tile t - 1, which this thread has finished reading.
    if (t + kStages - 1 < tiles) load_tile((t + kStages - 1) % kStages);
    cp_async_commit();
    cp_async_wait<kStages - 1>();  // tile t's group is complete
    score_tile(t % kStages, t);
  }
  if (warp < a.group && lane == 0)
    w.partial[out_row * w.segments + blockIdx.x] = make_float2(run_max, run_sum);
}

__global__ void __launch_bounds__(kThreads) normalize_kernel(ScoreArgs a, int segment) {
  __shared__ float s_max[kMaxGroup], s_inv_sum[kMaxGroup];
  const int h = blockIdx.y, b = blockIdx.z;
  const int n_b = chunk_count(a, b);
  const int t0 = blockIdx.x * kTile;
  const int lane = threadIdx.x & 31;
  const Workspace w = workspace(a, segment);
  const int64_t row0 = (int64_t(b) * a.heads + h) * a.group;

  // This thread's logits are loaded before the row statistics, to overlap the two.
  float x[kChunksPerThread][kMaxGroup];
#pragma unroll
  for (int c = 0; c < kChunksPerThread; ++c) {
    const int n = t0 + c * kThreads + threadIdx.x;
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g)
      x[c][g] = g < a.group && n < n_b ? w.logits[(row0 + g) * a.max_chunks + n] : kNegInf;
  }
  if (t0 < n_b) {
    const int segments = (n_b + segment - 1) / segment;
    for (int g = threadIdx.x >> 5; g < a.group; g += kWarps) {
      const float2* part = w.partial + (row0 + g) * w.segments;
      float m = kNegInf;
      for (int s = lane; s < segments; s += 32) m = fmaxf(m, part[s].x);
      m = warp_max(m);
      float z = 0.f;
      for (int s = lane; s < segments; s += 32) {
        const float2 p = part[s];
        if (p.x != kNegInf) z += p.y * expf(p.x - m);
      }
      z = warp_sum(z);
      if (lane == 0) {
        s_max[g] = m;
        s_inv_sum[g] = 1.f / z;
      }
    }
  }
  __syncthreads();

  float* out = a.scores + (int64_t(b) * a.heads + h) * a.max_chunks;
#pragma unroll
  for (int c = 0; c < kChunksPerThread; ++c) {
    const int n = t0 + c * kThreads + threadIdx.x;
    if (n >= a.max_chunks) break;
    float score = kNegInf;
    if (n < n_b && x[c][0] != kNegInf) {  // an excluded chunk's logits are -inf for every g
      score = 0.f;
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g)
        if (g < a.group) score = fmaxf(score, expf(x[c][g] - s_max[g]) * s_inv_sum[g]);
    }
    out[n] = score;
  }
}

// Calls f.run<T, D, GM>() for the head dim and GQA group (GM: the group rounded up to a power
// of two).
template <typename T, int D, typename F>
auto by_group(int group, F& f) {
  if (group <= 1) return f.template run<T, D, 1>();
  if (group <= 2) return f.template run<T, D, 2>();
  if (group <= 4) return f.template run<T, D, 4>();
  return f.template run<T, D, 8>();
}

template <typename T, typename F>
auto by_dim(int head_dim, int group, F& f) {
  if (head_dim == 64) return by_group<T, 64>(group, f);
  if (head_dim == 128) return by_group<T, 128>(group, f);
  return by_group<T, 256>(group, f);
}

// Calls f.run<T, D>() for a 16-bit dtype and the head dim (the tensor-core kernel takes any
// group up to 8).
template <typename T, typename F>
auto by_dim_16bit(int head_dim, F& f) {
  if (head_dim == 64) return f.template run<T, 64>();
  if (head_dim == 128) return f.template run<T, 128>();
  return f.template run<T, 256>();
}

struct TileRows {
  template <typename T, int D, int GM>
  int run() { return RowMap<T, D, GM>::kTileRows; }
};

// Three stages where two blocks of them fit on a SM (H100/H200: 228 KiB), else two (A100).
struct LaunchSegments {
  const ScoreArgs& a;
  dim3 grid;
  int tiles_per_block;
  int smem_per_sm;
  cudaStream_t stream;
  template <typename T, int D, int GM>
  cudaError_t run() {
    constexpr int kStatic = 16 * 1024;  // s_q, s_logits and the runtime's reserve, rounded up
    if (2 * (3 * stage_bytes<T, D, GM>() + kStatic) <= smem_per_sm)
      return launch<T, D, GM, 3>();
    return launch<T, D, GM, 2>();
  }
  template <typename T, int D, int GM, int kStages>
  cudaError_t launch() {
    auto* kernel = score_segments_kernel<T, D, GM, kStages>;
    const int smem = kStages * stage_bytes<T, D, GM>();
    cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) return err;
    kernel<<<grid, kThreads, smem, stream>>>(a, tiles_per_block);
    return cudaGetLastError();
  }
};

// The tensor-core segments launch (16-bit landmarks).
struct LaunchMmaSegments {
  const ScoreArgs& a;
  int sms;
  cudaStream_t stream;
  int segment = 0;  // chunks per block, for the normalize launch
  template <typename T, int D>
  cudaError_t run() {
    auto* kernel = score_segments_mma_kernel<T, D>;
    int per_sm = 0;
    cudaError_t err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0);
    if (err != cudaSuccess) return err;
    const int groups_per_warp = mma_groups_per_warp(int64_t(a.heads) * a.batch, sms * per_sm);
    segment = kWarps * groups_per_warp * kMmaRows;
    const dim3 grid((a.max_chunks + segment - 1) / segment, a.heads, a.batch);
    kernel<<<grid, kThreads, 0, stream>>>(a, groups_per_warp);
    return cudaGetLastError();
  }
  // A launch takes ceil(blocks / resident blocks) waves of about groups_per_warp + 1 group-times
  // each (the one for a block's prologue: exclusion bitmap, queries, first loads): the power of
  // two up to kMaxGroupsPerWarp that minimises that product, the larger one on ties, among
  // those whose segment's page ids fit the kernel's table.
  int mma_groups_per_warp(int64_t rows, int resident) const {
    int best = 1;
    int64_t best_cost = -1;
    for (int gpw = 1; gpw <= kMaxGroupsPerWarp; gpw *= 2) {
      const int64_t segment = int64_t(kWarps) * gpw * kMmaRows;
      if (segment / a.rows_per_page + 1 > kMaxPageIds) break;
      const int64_t blocks = (a.max_chunks + segment - 1) / segment * rows;
      const int64_t cost = (blocks + resident - 1) / resident * (gpw + 1);
      if (best_cost < 0 || cost <= best_cost) {
        best = gpw;
        best_cost = cost;
      }
    }
    return best;
  }
};

// Rows of the smallest segment a launch may use: the workspace keeps one (max, sum) per segment.
int min_segment_rows(const ScoreArgs& a, DType dtype) {
  if (dtype != DType::kFloat32) return kWarps * kMmaRows;
  TileRows f;
  return by_dim<float>(a.head_dim, a.group, f);
}

// A block keeps the next tile's loads in flight while it scores one, so more tiles per block
// hide more latency, but the grid must still fill the GPU (2 blocks per SM): up to 8 tiles, while
// the blocks still fill ~90% of those slots. On an H200 this picked the best of 1/2/4/8 tiles at
// 4096 and 16384 chunks of one sequence and at 32 sequences (4, 1 and 8 tiles).
int tiles_per_block(int64_t tiles, int sms) {
  int t = 1;
  while (t < 8 && tiles * 10 >= int64_t(2 * t) * 9 * (2 * sms)) t *= 2;
  return t;
}

}  // namespace

bool score_chunks_supports(int head_dim, int group) {
  return (head_dim == 64 || head_dim == 128 || head_dim == 256) && group >= 1 &&
         group <= kMaxGroup;
}

size_t score_chunks_workspace_floats(const ScoreArgs& a, DType dtype) {
  // Room for one (max, sum) pair per tile: enough for any number of tiles per block.
  const int rows = min_segment_rows(a, dtype);
  const int64_t segments = (int64_t(a.max_chunks) + rows - 1) / rows;
  return static_cast<size_t>(logits_floats(a) +
                             2 * int64_t(a.batch) * a.heads * a.group * segments);
}

cudaError_t launch_score_chunks(const ScoreArgs& a, DType dtype, cudaStream_t stream) {
  if (a.batch == 0 || a.heads == 0 || a.max_chunks == 0) return cudaSuccess;
  if (!score_chunks_supports(a.head_dim, a.group)) return cudaErrorInvalidValue;
  int device = 0, sms = 0, smem_per_sm = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  if (err != cudaSuccess) return err;
  int segment = 0;
  if (dtype != DType::kFloat32) {
    LaunchMmaSegments launch{a, sms, stream};
    err = dtype == DType::kFloat16 ? by_dim_16bit<__half>(a.head_dim, launch)
                                   : by_dim_16bit<__nv_bfloat16>(a.head_dim, launch);
    segment = launch.segment;
  } else {
    TileRows f;
    const int rows = by_dim<float>(a.head_dim, a.group, f);
    const int64_t tiles = (int64_t(a.max_chunks) + rows - 1) / rows * a.heads * a.batch;
    const int per_block = tiles_per_block(tiles, sms);
    segment = per_block * rows;
    LaunchSegments launch{a, dim3((a.max_chunks + segment - 1) / segment, a.heads, a.batch),
                          per_block, smem_per_sm, stream};
    err = by_dim<float>(a.head_dim, a.group, launch);
  }
  if (err != cudaSuccess) return err;
  const dim3 grid((a.max_chunks + kTile - 1) / kTile, a.heads, a.batch);
  normalize_kernel<<<grid, kThreads, 0, stream>>>(a, segment);
  return cudaGetLastError();
}

}  // namespace shadowkv

// What the two landmark-scoring launches share (score_chunks.cu): the float workspace that carries
// the logits and each segment's softmax statistics from the segments launch to the normalize
// launch, and the warp reductions both use.
#pragma once

#include <cstdint>

#include "launchers.h"

namespace shadowkv {
namespace scoring {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGroup = 8;
constexpr float kNegInf = -__builtin_huge_valf();

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// (max, sum of exp(x - max)) of the union of two sets, each given as its own (max, sum); an empty
// set is (-inf, 0).
__device__ __forceinline__ float2 merge_softmax_stats(float2 p, float2 q) {
  const float m = fmaxf(p.x, q.x);
  if (m == kNegInf) return make_float2(kNegInf, 0.f);
  return make_float2(m, p.y * expf(p.x - m) + q.y * expf(q.x - m));
}

struct Workspace {
  float* logits;    // [batch, q_heads, max_chunks]
  float2* partial;  // [batch, q_heads, segments]: (max, sum of exp) of each segment
  int segments;
};

__host__ __device__ inline int64_t logits_floats(const ScoreArgs& a) {
  // Rounded up so that the (max, sum) pairs after the logits are 8-byte aligned.
  return (int64_t(a.batch) * a.heads * a.group * a.max_chunks + 1) / 2 * 2;
}

// The workspace of a launch whose segments launch gives each block `segment` chunks.
__device__ __forceinline__ Workspace workspace(const ScoreArgs& a, int segment) {
  return {a.workspace, reinterpret_cast<float2*>(a.workspace + logits_floats(a)),
          (a.max_chunks + segment - 1) / segment};
}

__device__ __forceinline__ int chunk_count(const ScoreArgs& a, int b) {
  return min(a.n_chunks[b], a.max_chunks);
}

}  // namespace scoring
}  // namespace shadowkv

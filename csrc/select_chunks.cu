// Chunk selection and the hit/miss plan of one decode layer in one launch, one block per row (a
// sequence's KV head). Must equal the twin shadowkv_engine/ops/chunk_selection.py exactly:
//   selected = the k best-scoring chunks of the row (-inf: not selectable), ties broken by the
//              lower chunk id (all of them when fewer than k are selectable);
//   then the plan of plan_chunk_reuse.cu: a resident chunk selected again stays in its slot (a
//   hit); the misses, ascending by chunk id, fill the other slots in ascending slot order; the
//   rest become empty (-1). The row's resident ids are updated in place in the decode state,
//   `fetch` says which chunk each slot must load, and the hits are added to the row's sequence
//   counter.
//
// Why one kernel: torch.topk (a radix select of its own), the -1 padding, the gather and scatter
// of the resident rows, the plan and the hit count were ten launches a layer, each a few
// microseconds for a few kilobytes of work (docs/benchmarks.md, profile of 2026-11-30).
//
// The k-th best score is found by a radix select on the scores' order-preserving integer keys,
// 8 bits a pass from the top: a histogram of the next digit among the keys that match the prefix
// found so far, then the digit where the count from the top reaches k. The row's keys are kept in
// shared memory where they fit (else read from global memory each pass: the scoring kernel just
// wrote them and they sit in L2), so any row length works; shared memory also holds two bitmaps
// over the row's chunk ids (selected, resident) and the slot lists.
#include <cfloat>
#include <cstdint>

#include <cuda_runtime.h>

#include "block_scan.cuh"
#include "launchers.h"

namespace shadowkv {
namespace {

constexpr int kThreads = 512;
constexpr int kBins = 256;

// Larger float, larger key; -inf and NaN map to 0, below every selectable score (the lowest
// finite float's key is 0x00800000). -0 counts as +0, as comparisons (and the twin) have it.
__device__ __forceinline__ uint32_t order_key(float x) {
  if (!(x >= -FLT_MAX)) return 0u;  // -inf or NaN
  const uint32_t u = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ bool test_bit(const uint32_t* bits, int i) {
  return (bits[i >> 5] >> (i & 31)) & 1u;
}

// Adds one to hist[digit] for every thread with `active`; lanes with the same digit add once.
__device__ __forceinline__ void count_digit(int* hist, bool active, uint32_t digit) {
  const unsigned voters = __ballot_sync(0xffffffffu, active);
  if (!active) return;
  const unsigned peers = __match_any_sync(voters, digit);
  if ((threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(hist + digit, __popc(peers));
}

struct Shared {
  int hist[kBins];
  int warp_totals[32];
  uint32_t prefix;  // key bits found so far
  int remaining;    // of the k, how many are still to be found below the prefix's digits
  int ties;         // after the last digit: keys equal to the threshold
  int valid;        // selectable chunks of the row
};

// Warp 0 after a histogram pass: finds the digit at which the counts from the top reach
// `remaining`, adds it to the prefix, and clears the histogram for the next pass. A lane holds
// 8 bins, in descending digit order across the warp.
__device__ __forceinline__ void pick_digit(Shared& s, int shift) {
  const int lane = threadIdx.x & 31;
  int count[8], lane_total = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int digit = kBins - 1 - (8 * lane + j);
    count[j] = s.hist[digit];
    s.hist[digit] = 0;
    lane_total += count[j];
  }
  int inclusive = lane_total;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int up = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += up;
  }
  int above = inclusive - lane_total;
  const int remaining = s.remaining;
  if (above < remaining && inclusive >= remaining) {  // exactly one lane
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (above + count[j] >= remaining) {
        s.prefix |= uint32_t(kBins - 1 - (8 * lane + j)) << shift;
        s.remaining = remaining - above;
        s.ties = count[j];
        break;
      }
      above += count[j];
    }
  }
}

// Dynamic shared memory: selected bits [words] | resident bits [words] | misses [k] |
// kept [k] bytes | (cached) the row's keys [n]. With the keys cached, the row is read from
// global memory once; without (rows too long for shared memory), once a pass.
__global__ void __launch_bounds__(kThreads) select_kernel(SelectArgs a, int words, bool cached) {
  extern __shared__ uint32_t smem[];
  __shared__ Shared s;
  uint32_t* selected_bits = smem;
  uint32_t* resident_bits = smem + words;
  int* misses = reinterpret_cast<int*>(resident_bits + words);
  unsigned char* kept = reinterpret_cast<unsigned char*>(misses + a.k);
  uint32_t* keys = reinterpret_cast<uint32_t*>(kept + ((a.k + 3) & ~3));

  const int row = blockIdx.x;  // b * heads + h
  const int b = row / a.heads, h = row - b * a.heads;
  const int n = a.num_chunks, k = a.k;
  const float* scores = a.scores + int64_t(row) * n;
  int32_t* resident =
      a.resident + a.slots[b] * a.resident_slot_stride + h * int64_t(k);  // [k], in place
  auto key_at = [&](int i) { return cached ? keys[i] : order_key(scores[i]); };

  for (int i = threadIdx.x; i < 2 * words; i += kThreads) smem[i] = 0u;
  for (int i = threadIdx.x; i < kBins; i += kThreads) s.hist[i] = 0;
  if (threadIdx.x == 0) s.valid = 0;
  __syncthreads();

  // Selectable chunks, and the histogram of the top digit.
  int my_valid = 0;
  for (int base = 0; base < n; base += kThreads) {
    const int i = base + threadIdx.x;
    const uint32_t key = i < n ? order_key(scores[i]) : 0u;
    if (cached && i < n) keys[i] = key;
    my_valid += key != 0u;
    count_digit(s.hist, key != 0u, key >> 24);
  }
  if (my_valid) atomicAdd(&s.valid, my_valid);
  __syncthreads();
  const bool take_all = s.valid <= k;  // block-uniform

  // Radix select of the k-th largest key: threshold `prefix`, and `remaining` keys equal to it
  // to take (the lowest chunk ids first).
  if (!take_all) {
    if (threadIdx.x == 0) {
      s.prefix = 0u;
      s.remaining = k;
      s.ties = 0;
    }
    __syncthreads();
    for (int shift = 24; shift >= 0; shift -= 8) {
      if (shift < 24) {  // the top digit's histogram came with the count of selectable chunks
        const uint32_t prefix = s.prefix;
        const uint32_t high_mask = 0xffffffffu << (shift + 8);
        for (int base = 0; base < n; base += kThreads) {
          const int i = base + threadIdx.x;
          const uint32_t key = i < n ? key_at(i) : 0u;
          count_digit(s.hist, key != 0u && (key & high_mask) == prefix, (key >> shift) & 0xffu);
        }
        __syncthreads();
      }
      if (threadIdx.x < 32) pick_digit(s, shift);
      __syncthreads();
    }
  }
  const uint32_t threshold = take_all ? 1u : s.prefix;
  const int ties_wanted = take_all ? 0 : s.remaining;
  // Usually every key equal to the threshold is taken (one, for distinct scores): then no
  // ranking of the ties by chunk id is needed.
  const bool rank_ties = !take_all && s.ties > ties_wanted;

  // Resident chunks as bits (ids outside [0, n) are never selected: they are evicted).
  for (int j = threadIdx.x; j < k; j += kThreads) {
    const int r = resident[j];
    if (r >= 0 && r < n) atomicOr(resident_bits + (r >> 5), 1u << (r & 31));
  }

  // The selection: keys above the threshold, and the first ties_wanted keys equal to it by
  // chunk id. Each thread takes a contiguous range of chunk ids, so two block scans (ties,
  // misses) order everything by chunk id; misses (selected, not resident) are listed in order.
  const int per_thread = (n + kThreads - 1) / kThreads;
  const int lo = min(n, static_cast<int>(threadIdx.x) * per_thread);
  const int hi = min(n, lo + per_thread);
  int tie_rank = 0;
  if (rank_ties) {
    int my_ties = 0, total;
    for (int i = lo; i < hi; ++i) my_ties += key_at(i) == threshold;
    tie_rank = block_exclusive_scan(my_ties, s.warp_totals, total);
  }
  __syncthreads();  // the resident bits are complete
  int my_misses = 0;
  for (int i = lo; i < hi; ++i) {
    const uint32_t key = key_at(i);
    bool chosen = key != 0u && (take_all || key >= threshold);
    if (rank_ties && key == threshold) chosen = tie_rank++ < ties_wanted;
    if (!chosen) continue;
    atomicOr(selected_bits + (i >> 5), 1u << (i & 31));
    my_misses += !test_bit(resident_bits, i);
  }
  int num_misses;
  int miss_rank = block_exclusive_scan(my_misses, s.warp_totals, num_misses);  // bits complete
  for (int i = lo; i < hi && my_misses; ++i) {
    if (test_bit(selected_bits, i) && !test_bit(resident_bits, i)) {
      misses[miss_rank++] = i;
      --my_misses;
    }
  }
  for (int j = threadIdx.x; j < k; j += kThreads) {
    const int r = resident[j];
    kept[j] = r >= 0 && r < n && test_bit(selected_bits, r);
  }
  __syncthreads();

  int32_t* fetch = a.fetch + int64_t(row) * k;
  int num_free = 0;
  for (int base = 0; base < k; base += kThreads) {
    const int j = base + threadIdx.x;
    const bool free_slot = j < k && !kept[j];
    int free_total;
    const int rank = num_free + block_exclusive_scan(free_slot, s.warp_totals, free_total);
    if (free_slot) {
      const int incoming = rank < num_misses ? misses[rank] : -1;
      resident[j] = incoming;
      fetch[j] = incoming;
    } else if (j < k) {
      fetch[j] = -1;
    }
    num_free += free_total;
  }
  if (threadIdx.x == 0 && k > num_free)
    atomicAdd(a.hits + a.slots[b], static_cast<unsigned long long>(k - num_free));
}

int bitmap_words(int num_chunks) { return (num_chunks + 31) / 32; }

}  // namespace

size_t select_smem_bytes(int num_chunks, int k) {
  return 2 * sizeof(uint32_t) * bitmap_words(num_chunks) + k * sizeof(int) + ((k + 3) & ~3);
}

cudaError_t launch_select_chunks(const SelectArgs& a, cudaStream_t stream) {
  if (a.batch == 0 || a.heads == 0 || a.k == 0) return cudaSuccess;
  int device = 0, max_smem = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err != cudaSuccess) return err;
  // The row's keys in shared memory where they fit beside the rest (rows of up to ~50K chunks).
  size_t smem = select_smem_bytes(a.num_chunks, a.k);
  const size_t with_keys = smem + sizeof(uint32_t) * size_t(a.num_chunks);
  const bool cached = with_keys + sizeof(Shared) <= size_t(max_smem);
  if (cached) smem = with_keys;
  if (smem > 48 * 1024) {
    err = cudaFuncSetAttribute(select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  select_kernel<<<a.batch * a.heads, kThreads, smem, stream>>>(a, bitmap_words(a.num_chunks),
                                                                 cached);
  return cudaGetLastError();
}

}  // namespace shadowkv

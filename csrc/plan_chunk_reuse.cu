// GPU hit/miss planner, one block per row (a sequence's KV head in one layer). Must equal the
// plain-torch twin shadowkv_engine/ops/chunk_plan.py exactly:
//   hit  = a resident chunk selected again: it stays in its slot, nothing is fetched;
//   miss = a selected chunk not resident: misses, ascending by chunk id, fill the slots that
//          hold no hit in ascending slot order; the remaining free slots become empty (-1).
// The selected ids are bitonic-sorted in shared memory; each resident id is binary-searched in
// them (a hit marks the id it matched), and two stable block scans place misses into free
// slots. Any number of slots k works: the sort array is k rounded up to a power of two, held in
// dynamic shared memory (k = 8192 needs 72 KiB), and every loop strides over the block.
#include <climits>

#include <cuda_runtime.h>

#include "block_scan.cuh"
#include "launchers.h"

namespace shadowkv {
namespace {

constexpr int kPad = INT_MAX;  // padding sorts last, like the twin's iinfo(int32).max

int next_pow2(int x) {
  int p = 1;
  while (p < x) p <<= 1;
  return p;
}

// First index in sorted[0, n) holding a value >= v.
__device__ __forceinline__ int lower_bound(const int* sorted, int n, int v) {
  int lo = 0, hi = n;
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    if (sorted[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

__device__ void bitonic_sort(int* s, int n) {
  for (int size = 2; size <= n; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      __syncthreads();
      for (int p = threadIdx.x; p < (n >> 1); p += blockDim.x) {
        int lo = 2 * p - (p & (stride - 1));
        int hi = lo + stride;
        int a = s[lo], b = s[hi];
        bool ascending = (lo & size) == 0;
        if ((a > b) == ascending) { s[lo] = b; s[hi] = a; }
      }
    }
  }
  __syncthreads();
}

// Shared memory: sorted[n] ints | misses[k] ints | matched[n] bytes | kept[k] bytes.
__global__ void plan_kernel(PlanArgs a, int n) {
  extern __shared__ int smem[];
  __shared__ int warp_totals[32];
  int* sorted = smem;
  int* misses = sorted + n;
  unsigned char* matched = reinterpret_cast<unsigned char*>(misses + a.k);
  unsigned char* kept = matched + n;

  const int k = a.k;
  const int64_t row = blockIdx.x;
  const int32_t* resident = a.resident + row * k;
  const int32_t* selected = a.selected + row * k;

  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    int v = i < k ? selected[i] : -1;
    sorted[i] = v >= 0 ? v : kPad;
    matched[i] = 0;
  }
  bitonic_sort(sorted, n);

  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    int r = resident[j];
    bool keep = false;
    if (r >= 0) {
      int at = lower_bound(sorted, n, r);
      keep = at < n && sorted[at] == r;
      if (keep) matched[at] = 1;  // several writers store the same value: no race in effect
    }
    kept[j] = keep;
  }
  __syncthreads();

  // Misses in ascending chunk id; real ids sit in sorted[0, k) since there are at most k.
  int num_misses = 0;
  for (int base = 0; base < k; base += blockDim.x) {
    int i = base + threadIdx.x;
    bool miss = false;
    int v = kPad;
    if (i < k) {
      v = sorted[i];
      if (v != kPad) {
        int first = (i > 0 && sorted[i - 1] == v) ? lower_bound(sorted, i, v) : i;
        miss = !matched[first];
      }
    }
    int tile_total;
    int rank = block_exclusive_scan(miss, warp_totals, tile_total);
    if (miss) misses[num_misses + rank] = v;
    num_misses += tile_total;
  }
  __syncthreads();

  int32_t* new_resident = a.new_resident + row * k;
  int32_t* fetch = a.fetch + row * k;
  int num_free = 0;
  for (int base = 0; base < k; base += blockDim.x) {
    int j = base + threadIdx.x;
    bool free_slot = j < k && !kept[j];
    int tile_total;
    int rank = num_free + block_exclusive_scan(free_slot, warp_totals, tile_total);
    if (j < k) {
      if (!free_slot) {
        new_resident[j] = resident[j];
        fetch[j] = -1;
      } else {
        int incoming = rank < num_misses ? misses[rank] : -1;
        new_resident[j] = incoming;
        fetch[j] = incoming;
      }
    }
    num_free += tile_total;
  }
  if (threadIdx.x == 0) a.hits[row] = k - num_free;
}

}  // namespace

size_t plan_smem_bytes(int k) {
  size_t n = next_pow2(k < 2 ? 2 : k);
  return n * sizeof(int) + k * sizeof(int) + n + k;
}

cudaError_t launch_plan_chunk_reuse(const PlanArgs& a, cudaStream_t stream) {
  if (a.rows == 0 || a.k == 0) return cudaSuccess;
  int n = next_pow2(a.k < 2 ? 2 : a.k);
  int threads = n / 2 < 32 ? 32 : (n / 2 > 1024 ? 1024 : n / 2);
  size_t smem = plan_smem_bytes(a.k);
  if (smem > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(plan_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  plan_kernel<<<a.rows, threads, smem, stream>>>(a, n);
  return cudaGetLastError();
}

}  // namespace shadowkv

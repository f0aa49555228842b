// Block-wide exclusive prefix sum of one int per thread, used to compact flagged items
// (plan misses, free slots, fetched slots) in a stable order without atomics.
#pragma once

namespace shadowkv {

// `warp_totals` is __shared__ int[32]. Returns the exclusive prefix of `value` over the block's
// threads in threadIdx.x order and sets `total` to the block's sum. Every thread must call it;
// it ends with a barrier, so it can be called again at once.
__device__ __forceinline__ int block_exclusive_scan(int value, int* warp_totals, int& total) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = (blockDim.x + 31) >> 5;
  int inclusive = value;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    int up = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += up;
  }
  if (lane == 31) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int w = lane < num_warps ? warp_totals[lane] : 0;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      int up = __shfl_up_sync(0xffffffffu, w, offset);
      if (lane >= offset) w += up;
    }
    if (lane < num_warps) warp_totals[lane] = w;  // inclusive prefix over warps
  }
  __syncthreads();
  const int before = warp > 0 ? warp_totals[warp - 1] : 0;
  total = warp_totals[num_warps - 1];
  __syncthreads();
  return before + inclusive - value;
}

}  // namespace shadowkv

// Zero-copy value gather: the kernel reads the fetched chunks straight out of pinned host memory
// over PCIe (UVA), or out of the store's device tier, and writes them into the GPU slot rows. One launch moves every fetched chunk of
// every (sequence, KV head, slot); empty slots (fetch = -1, the plan's hits and unused slots) cost
// one int read. Bytes are copied as 16-byte vectors, so any dtype, head dim and chunk size work.
//
// Why a warp per chunk and unrolled loads: PCIe reads have microseconds of latency, so bandwidth
// needs many reads in flight; each lane issues all its loads of a chunk before its first store,
// and a grid of 16 blocks of 8 warps per SM keeps ~100 KiB outstanding (tools/bench_pcie_hbm.cu
// reached 50.6 GB/s on 2 KiB chunks this way).
#include <cuda_runtime.h>

#include "launchers.h"

namespace shadowkv {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;

__global__ void __launch_bounds__(kThreads) gather_kernel(GatherArgs a) {
  const SlotTables& t = a.t;
  const int lane = threadIdx.x & 31;
  const int64_t num_items = int64_t(t.batch) * t.heads * t.slots;
  const int64_t num_warps = int64_t(gridDim.x) * (kThreads / 32);
  const int row_vecs = a.row_bytes / 16;
  const int chunk_vecs = t.chunk_size * row_vecs;
  const char* store = static_cast<const char*>(a.store);
  const char* device_store = static_cast<const char*>(a.device_store);
  char* kv = static_cast<char*>(a.kv);

  for (int64_t item = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> 5; item < num_items;
       item += num_warps) {
    const int chunk = t.fetch[item];
    if (chunk < 0) continue;
    const int slot = static_cast<int>(item % t.slots);
    const int64_t bh = item / t.slots;
    const int head = static_cast<int>(bh % t.heads);
    const int b = static_cast<int>(bh / t.heads);

    // Rows are looked up one by one: neither the chunk's tokens nor its slot rows need to lie in
    // one page (chunk_size need not divide block_size, row_offset need not be chunk-aligned).
    const int64_t token0 = int64_t(chunk) * t.chunk_size;
    const int64_t row0 = t.row_offset[b] + int64_t(slot) * t.chunk_size;
    const int32_t* src_pages = a.store_pages + int64_t(b) * a.store_cols;
    const int32_t* dst_pages = t.slot_pages + int64_t(b) * t.slot_cols;
    const int64_t head_offset = head * a.store_head_stride * a.itemsize;
    char* dst_head = kv + head * a.kv_head_stride * a.itemsize;
    // A chunk counts as read from the host when its first token's page is there (a chunk lies in
    // one page whenever chunk_size divides block_size, as the engine requires).
    if (a.host_chunks != nullptr && lane == 0 && src_pages[token0 / t.block_size] < a.host_pages)
      atomicAdd(a.host_chunks + a.slots[b], 1ULL);

    for (int v0 = lane; v0 < chunk_vecs; v0 += 32 * kUnroll) {
      uint4 buf[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        int v = v0 + 32 * u;
        if (v < chunk_vecs) {
          int i = v / row_vecs, w = v - i * row_vecs;
          int64_t token = token0 + i;
          int64_t page = src_pages[token / t.block_size];
          const char* tier = store;
          if (page >= a.host_pages) {
            tier = device_store;
            page -= a.host_pages;
          }
          int64_t elem = page * a.store_page_stride + (token % t.block_size) * a.store_row_stride;
          buf[u] = *reinterpret_cast<const uint4*>(tier + head_offset + elem * a.itemsize + w * 16);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        int v = v0 + 32 * u;
        if (v < chunk_vecs) {
          int i = v / row_vecs, w = v - i * row_vecs;
          int64_t row = row0 + i;
          int64_t elem = int64_t(dst_pages[row / t.block_size]) * a.kv_page_stride +
                         (row % t.block_size) * a.kv_row_stride;
          *reinterpret_cast<uint4*>(dst_head + elem * a.itemsize + w * 16) = buf[u];
        }
      }
    }
  }
}

}  // namespace

cudaError_t launch_gather_values(const GatherArgs& a, cudaStream_t stream) {
  const int64_t items = int64_t(a.t.batch) * a.t.heads * a.t.slots;
  if (items == 0) return cudaSuccess;
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  const int64_t needed = (items + kThreads / 32 - 1) / (kThreads / 32);
  int64_t limit = int64_t(sms) * 16;
  if (a.max_blocks > 0 && a.max_blocks < limit) limit = a.max_blocks;
  const int blocks = static_cast<int>(needed < limit ? needed : limit);
  gather_kernel<<<blocks, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace shadowkv

// Zero-copy value gather: the kernel reads the fetched chunks straight out of pinned host memory
// over PCIe (UVA), or out of the store's device tier, and writes them into the GPU slot rows.
// One launch moves every fetched chunk of every (sequence, KV head, slot); empty slots (fetch =
// -1, the plan's hits and unused slots) cost one int read. Bytes are copied as 16-byte vectors,
// so any dtype, head dim and chunk size work.
//
// Index arithmetic is 32-bit and a chunk's pages are looked up once per chunk, not per 16-byte
// vector with 64-bit divisions (3% of the gather's time at 32K, batch 8). From the device tier
// it moves ~2.7 TB/s (read + write) on an H200: HBM serves scattered 2 KiB blocks at ~3.2 TB/s
// against 4.3 TB/s for a linear copy (benchmarks/probe_block_granularity.py).
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

// Where row i of a chunk lies: a page and a row within it, from a table of pages of block_size
// rows. A chunk inside one page (chunk_size divides block_size, as the engine requires) looks its
// page up once; otherwise each row does. 32-bit: rows index a sequence, below 2^31.
struct ChunkRows {
  const int32_t* pages;
  int first, block_size, page, page_row;
  bool one_page;

  __device__ ChunkRows(const int32_t* pages_, int first_, int chunk_size, int block_size_)
      : pages(pages_), first(first_), block_size(block_size_) {
    const int col = first / block_size;
    page_row = first - col * block_size;
    one_page = page_row + chunk_size <= block_size;
    page = one_page ? pages[col] : 0;
  }
  __device__ __forceinline__ void locate(int i, int64_t& page_out, int& row_out) const {
    if (one_page) {
      page_out = page;
      row_out = page_row + i;
    } else {
      const int row = first + i, col = row / block_size;
      page_out = pages[col];
      row_out = row - col * block_size;
    }
  }
};

__global__ void __launch_bounds__(kThreads) gather_kernel(GatherArgs a) {
  const SlotTables& t = a.t;
  const int lane = threadIdx.x & 31;
  const int num_items = t.batch * t.heads * t.slots;
  const int num_warps = gridDim.x * (kThreads / 32);
  const int row_vecs = a.row_bytes / 16;
  const int chunk_vecs = t.chunk_size * row_vecs;
  const char* store = static_cast<const char*>(a.store);
  const char* device_store = static_cast<const char*>(a.device_store);
  char* kv = static_cast<char*>(a.kv);

  for (int item = (blockIdx.x * kThreads + threadIdx.x) >> 5; item < num_items;
       item += num_warps) {
    const int chunk = t.fetch[item];
    if (chunk < 0) continue;
    const int bh = item / t.slots, slot = item - bh * t.slots;
    const int b = bh / t.heads, head = bh - b * t.heads;

    // Neither the chunk's tokens nor its slot rows need to lie in one page (chunk_size need not
    // divide block_size, row_offset need not be chunk-aligned), but they do in the engine.
    const ChunkRows src(a.store_pages + int64_t(b) * a.store_cols, chunk * t.chunk_size,
                        t.chunk_size, t.block_size);
    const ChunkRows dst(t.slot_pages + int64_t(b) * t.slot_cols,
                        t.row_offset[b] + slot * t.chunk_size, t.chunk_size, t.block_size);
    const int64_t head_offset = head * a.store_head_stride * a.itemsize;
    char* dst_head = kv + head * a.kv_head_stride * a.itemsize;
    // A chunk counts as read from the host when its first token's page is there.
    if (a.host_chunks != nullptr && lane == 0) {
      int64_t page;
      int row;
      src.locate(0, page, row);
      if (page < a.host_pages) atomicAdd(a.host_chunks + a.slots[b], 1ULL);
    }

    for (int v0 = lane; v0 < chunk_vecs; v0 += 32 * kUnroll) {
      uint4 buf[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int v = v0 + 32 * u;
        if (v < chunk_vecs) {
          const int i = v / row_vecs, w = v - i * row_vecs;
          int64_t page;
          int row;
          src.locate(i, page, row);
          const char* tier = store;
          if (page >= a.host_pages) {
            tier = device_store;
            page -= a.host_pages;
          }
          const int64_t elem = page * a.store_page_stride + row * a.store_row_stride;
          buf[u] = *reinterpret_cast<const uint4*>(tier + head_offset + elem * a.itemsize + w * 16);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int v = v0 + 32 * u;
        if (v < chunk_vecs) {
          const int i = v / row_vecs, w = v - i * row_vecs;
          int64_t page;
          int row;
          dst.locate(i, page, row);
          const int64_t elem = page * a.kv_page_stride + row * a.kv_row_stride;
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
  if (items > INT32_MAX) return cudaErrorInvalidValue;  // the kernel counts items in 32 bits
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

// Value offload, the reverse of the zero-copy gather: the kernel writes token value rows from GPU
// memory straight into the pinned host value store over PCIe (UVA), or into its device tier. The copy is queued on the
// stream like any kernel (no host sync, no staging buffer), and one launch moves every row of a
// layer wherever its page and offset are. Bytes move as 16-byte vectors, so any dtype works whose
// rows are a multiple of 16 bytes.
//
// PCIe writes are posted (no round trip), so bandwidth needs the link kept busy rather than reads
// kept in flight: each thread loads all of its vectors from HBM before its first store, and
// consecutive lanes take consecutive vectors of a row, so a warp's stores combine into whole
// 128-byte lines of the destination.
#include <cuda_runtime.h>

#include "launchers.h"

namespace shadowkv {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;

__device__ __forceinline__ int64_t read_index(const void* table, int64_t i, int64_t stride,
                                              int itemsize) {
  return itemsize == 8 ? static_cast<const int64_t*>(table)[i * stride]
                       : static_cast<const int32_t*>(table)[i * stride];
}

__global__ void __launch_bounds__(kThreads) offload_kernel(OffloadArgs a) {
  const int row_vecs = a.row_bytes / 16;
  const int64_t num_vecs = int64_t(a.rows) * a.heads * row_vecs;
  const int64_t step = int64_t(gridDim.x) * kThreads;
  const char* values = static_cast<const char*>(a.values);
  char* store = static_cast<char*>(a.store);
  char* device_store = static_cast<char*>(a.device_store);

  for (int64_t v0 = int64_t(blockIdx.x) * kThreads + threadIdx.x; v0 < num_vecs;
       v0 += step * kUnroll) {
    uint4 buf[kUnroll];
    char* dst[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = v0 + step * u;
      if (v < num_vecs) {
        const int w = static_cast<int>(v % row_vecs);
        const int64_t row_head = v / row_vecs;
        const int head = static_cast<int>(row_head % a.heads);
        const int64_t row = row_head / a.heads;
        int64_t page = read_index(a.pages, row, a.pages_stride, a.pages_itemsize);
        char* tier = store;
        if (page >= a.host_pages) {
          tier = device_store;
          page -= a.host_pages;
        }
        const int64_t offset = read_index(a.offsets, row, a.offsets_stride, a.offsets_itemsize);
        const int64_t src = row * a.values_row_stride + head * a.values_head_stride;
        const int64_t elem = page * a.store_page_stride + head * a.store_head_stride +
                             offset * a.store_row_stride;
        buf[u] = *reinterpret_cast<const uint4*>(values + src * a.itemsize + w * 16);
        dst[u] = tier + elem * a.itemsize + w * 16;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (v0 + step * u < num_vecs) *reinterpret_cast<uint4*>(dst[u]) = buf[u];
    }
  }
}

}  // namespace

cudaError_t launch_offload_values(const OffloadArgs& a, cudaStream_t stream) {
  const int64_t num_vecs = int64_t(a.rows) * a.heads * (a.row_bytes / 16);
  if (num_vecs == 0) return cudaSuccess;
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  const int64_t per_block = int64_t(kThreads) * kUnroll;
  const int64_t needed = (num_vecs + per_block - 1) / per_block;
  const int64_t limit = int64_t(sms) * 8;  // 2048 resident threads per SM
  const int blocks = static_cast<int>(needed < limit ? needed : limit);
  offload_kernel<<<blocks, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace shadowkv

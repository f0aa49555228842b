// Coefficient rows of the decode rows' new tokens: u[r] = sum over KV heads h and dims d of
// k_pre[h, d] * basis_h[r, d] (float32 accumulation), written straight into the coefficient
// pages. Twin: project_coefficients_torch in shadowkv_engine/ops/coefficients.py.
//
// Why a kernel: in torch this was a gather of the basis pages, two layout copies for the batched
// matmul, the matmul and an indexed write, five launches a layer for ~2.6 MB at batch 8 (the
// copies alone 0.6 ms a step on an H200, docs/benchmarks.md). Here the basis rows are read once,
// in place: block = one sequence and kWarps basis rows, its key row staged in shared memory as
// float32; warp = one basis row r, its lanes striding over the H*D products in 16-byte vectors,
// all of a lane's loads issued before the key is staged (one memory round trip, not several:
// 5.5 us a layer at batch 8 with the loads in the loop).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "float_convert.cuh"
#include "launchers.h"

namespace shadowkv {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Vectors of a basis row (all heads) one lane loads before any arithmetic: with the loads of a
// row issued together, the block waits for one memory round trip instead of one per vector.
constexpr int kMaxLaneVecs = 16;  // rows of up to 512 vectors: H*D*itemsize <= 8 KiB

template <typename T>
__global__ void __launch_bounds__(kThreads) project_kernel(ProjectArgs a) {
  extern __shared__ float key[];  // [heads * head_dim] of this sequence, as float32
  constexpr int kElems = 16 / sizeof(T);
  const int b = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = blockIdx.x * kWarps + warp;
  const int row_vecs = a.head_dim / kElems;
  const int vecs = a.heads * row_vecs;

  // The basis row first (it does not depend on the key), then the key staged as float32.
  uint4 packed[kMaxLaneVecs];
  if (r < a.rank) {
    const int page = a.basis_pages[int64_t(b) * a.basis_cols + r / a.basis_rows_per_page];
    const T* row = static_cast<const T*>(a.basis) + page * a.basis_page_stride +
                   (r % a.basis_rows_per_page) * a.basis_row_stride;
#pragma unroll
    for (int i = 0; i < kMaxLaneVecs; ++i) {
      const int v = lane + 32 * i;
      if (v < vecs) {
        const int h = v / row_vecs, w = v - h * row_vecs;
        packed[i] = *reinterpret_cast<const uint4*>(row + h * a.basis_head_stride + w * kElems);
      }
    }
  }
  const int width = a.heads * a.head_dim;
  const T* k_pre = static_cast<const T*>(a.k_pre) + b * a.k_batch_stride;
  for (int i = threadIdx.x; i < width; i += kThreads) {
    const int h = i / a.head_dim, d = i - h * a.head_dim;
    key[i] = to_float(k_pre[h * a.k_head_stride + d]);
  }
  __syncthreads();
  if (r >= a.rank) return;

  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kMaxLaneVecs; ++i) {
    const int v = lane + 32 * i;
    if (v < vecs) {
      const int h = v / row_vecs, w = v - h * row_vecs;
      const T* elems = reinterpret_cast<const T*>(&packed[i]);
      const float* x = key + h * a.head_dim + w * kElems;
#pragma unroll
      for (int e = 0; e < kElems; ++e) sum += to_float(elems[e]) * x[e];
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) {
    T* u = static_cast<T*>(a.u) + a.u_page[b] * a.u_page_stride + a.u_row[b] * a.u_row_stride;
    u[r] = from_float<T>(sum);
  }
}

template <typename T>
cudaError_t launch(const ProjectArgs& a, cudaStream_t stream) {
  const size_t smem = size_t(a.heads) * a.head_dim * sizeof(float);
  if (smem > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(project_kernel<T>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid((a.rank + kWarps - 1) / kWarps, a.batch);
  project_kernel<T><<<grid, kThreads, smem, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

bool project_supports(int heads, int head_dim, int itemsize) {
  return int64_t(heads) * head_dim * itemsize <= int64_t(32) * kMaxLaneVecs * 16;
}

size_t project_smem_bytes(int heads, int head_dim) {
  return size_t(heads) * head_dim * sizeof(float);
}

cudaError_t launch_project_coefficients(const ProjectArgs& a, DType dtype, cudaStream_t stream) {
  if (a.batch == 0 || a.rank == 0) return cudaSuccess;
  switch (dtype) {
    case DType::kFloat32: return launch<float>(a, stream);
    case DType::kFloat16: return launch<__half>(a, stream);
    case DType::kBFloat16: return launch<__nv_bfloat16>(a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace shadowkv

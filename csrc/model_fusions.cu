// The decoder layer's elementwise work, fused: RoPE of q and k, RMSNorm with the residual add,
// SiLU-and-multiply, and the KV cache write. At decode batch sizes each of these moves a few
// KiB, so a torch kernel for every step of them costs its launch gap (~3-6 us in a CUDA graph)
// and little else; one kernel per fusion removes seven launches a layer.
//
// Each kernel is an exact transcription of its plain-torch twin (shadowkv_engine/ops/
// model_fusions.py), rounding to the dtype wherever the twin materializes a tensor, so that in
// float16/bfloat16 the two agree bit for bit. The one exception is RMSNorm's sum of squares: a
// float sum in another order than torch's, so its rstd may differ in the last float bit.
//
// Rows move as 16-byte vectors where every address and stride allows it, element by element
// otherwise (same results, slower).
#include <cstdint>
#include <initializer_list>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "float_convert.cuh"
#include "model_launchers.h"

namespace shadowkv {
namespace {

constexpr int kThreads = 256;


// VEC consecutive elements, moved as one access.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <int VEC, typename T>
__device__ __forceinline__ Pack<T, VEC> load(const T* p) {
  return *reinterpret_cast<const Pack<T, VEC>*>(p);
}

template <int VEC, typename T>
__device__ __forceinline__ void store(T* p, const Pack<T, VEC>& x) {
  *reinterpret_cast<Pack<T, VEC>*>(p) = x;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// True where 16-byte vectors of T can serve: every pointer 16-byte aligned, every extent and
// stride (in elements) a whole number of vectors.
template <typename T>
bool vectorizable(std::initializer_list<const void*> pointers,
                  std::initializer_list<int64_t> elements) {
  constexpr int64_t vec = 16 / sizeof(T);
  for (const void* p : pointers)
    if (!aligned16(p)) return false;
  for (int64_t e : elements)
    if (e % vec != 0) return false;
  return true;
}

int blocks_for(int64_t items) { return static_cast<int>((items + kThreads - 1) / kThreads); }

// ---- RoPE of q and k ----------------------------------------------------------------------

// The twin is apply_rope: t = x * cos rounded to the dtype (torch's mul), then
// addcmul(t, partner, sin) in float rounded once. Both products of two 16-bit values are exact in
// float, so FMA contraction cannot change a bit; the intrinsics only make that explicit.
template <typename T>
__device__ __forceinline__ T rotate(T x, T partner, T cos, T sin) {
  const float t = to_float(from_float<T>(__fmul_rn(to_float(x), to_float(cos))));
  return from_float<T>(__fadd_rn(t, __fmul_rn(to_float(partner), to_float(sin))));
}

// One thread per VEC elements of a head's first half and the VEC elements D/2 further on: the
// NeoX rotation pairs element d with d + D/2, so the thread reads both pieces and writes both.
template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) rope_qk_kernel(RopeQKArgs a) {
  const int half = a.head_dim / 2;
  const int pieces = half / VEC;
  const int heads = a.q_heads + a.kv_heads;
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= int64_t(a.tokens) * heads * pieces) return;
  const int d = static_cast<int>(i % pieces) * VEC;
  const int64_t token_head = i / pieces;
  const int head = static_cast<int>(token_head % heads);
  const int64_t token = token_head / heads;

  const T* x = static_cast<const T*>(a.qk) + token * a.qk_token_stride +
               head * a.qk_head_stride + d;
  const T* cos = static_cast<const T*>(a.cos) + token * a.cos_token_stride + d;
  const T* sin = static_cast<const T*>(a.sin) + token * a.sin_token_stride + d;
  const Pack<T, VEC> lo = load<VEC>(x), hi = load<VEC>(x + half);
  const Pack<T, VEC> cos_lo = load<VEC>(cos), cos_hi = load<VEC>(cos + half);
  const Pack<T, VEC> sin_lo = load<VEC>(sin), sin_hi = load<VEC>(sin + half);
  Pack<T, VEC> out_lo, out_hi;
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    // x.roll(D/2) puts x[d + D/2] at d and x[d] at d + D/2.
    out_lo.v[j] = rotate(lo.v[j], hi.v[j], cos_lo.v[j], sin_lo.v[j]);
    out_hi.v[j] = rotate(hi.v[j], lo.v[j], cos_hi.v[j], sin_hi.v[j]);
  }
  T* out = head < a.q_heads
               ? static_cast<T*>(a.q) + (token * a.q_heads + head) * a.head_dim
               : static_cast<T*>(a.k) + (token * a.kv_heads + head - a.q_heads) * a.head_dim;
  store<VEC>(out + d, out_lo);
  store<VEC>(out + half + d, out_hi);
}

template <typename T>
cudaError_t rope_qk(const RopeQKArgs& a, cudaStream_t stream) {
  const int half = a.head_dim / 2;
  const bool wide = vectorizable<T>({a.qk, a.cos, a.sin, a.q, a.k},
                                    {half, a.qk_token_stride, a.qk_head_stride,
                                     a.cos_token_stride, a.sin_token_stride});
  constexpr int kVec = 16 / sizeof(T);
  const int64_t items = int64_t(a.tokens) * (a.q_heads + a.kv_heads) * (wide ? half / kVec : half);
  if (items == 0) return cudaSuccess;
  if (wide)
    rope_qk_kernel<T, kVec><<<blocks_for(items), kThreads, 0, stream>>>(a);
  else
    rope_qk_kernel<T, 1><<<blocks_for(items), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

// ---- RMSNorm, with the residual add ---------------------------------------------------------

// The block's total of one float per thread, returned to every thread (blockDim a multiple of
// 32). `warp_sums` is __shared__ float[32].
__device__ __forceinline__ float block_sum(float v, float* warp_sums) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31;
  if (lane == 0) warp_sums[threadIdx.x >> 5] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x >> 5) ? warp_sums[lane] : 0.f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One block per row. The first pass forms the normed input (x, or residual + x rounded to the
// dtype as torch's add rounds it, stored back to the residual) and sums its squares; the second
// re-reads exactly the elements this thread read or wrote (cache-resident, so no barrier and
// little traffic) and writes weight * (rstd * x) rounded once, torch's CUDA rms_norm formula.
// out may be x: each element is read and written by one thread, the write after the barrier.
template <typename T, int VEC, bool kResidual>
__global__ void __launch_bounds__(1024) rms_norm_kernel(RmsNormArgs a) {
  __shared__ float warp_sums[32];
  const int64_t row = blockIdx.x;
  const int pieces = a.dim / VEC;
  const T* x = static_cast<const T*>(a.x) + row * a.x_row_stride;
  T* residual = kResidual ? static_cast<T*>(a.residual) + row * a.residual_row_stride : nullptr;
  const T* weight = static_cast<const T*>(a.weight);
  T* out = static_cast<T*>(a.out) + row * a.out_row_stride;

  float squares = 0.f;
  for (int p = threadIdx.x; p < pieces; p += blockDim.x) {
    Pack<T, VEC> s = load<VEC>(x + p * VEC);
    if constexpr (kResidual) {
      const Pack<T, VEC> r = load<VEC>(residual + p * VEC);
#pragma unroll
      for (int j = 0; j < VEC; ++j)
        s.v[j] = from_float<T>(__fadd_rn(to_float(r.v[j]), to_float(s.v[j])));
      store<VEC>(residual + p * VEC, s);
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const float f = to_float(s.v[j]);
      squares = fmaf(f, f, squares);
    }
  }
  const float rstd = rsqrtf(block_sum(squares, warp_sums) / static_cast<float>(a.dim) + a.eps);

  for (int p = threadIdx.x; p < pieces; p += blockDim.x) {
    const Pack<T, VEC> s = load<VEC>(kResidual ? residual + p * VEC : x + p * VEC);
    const Pack<T, VEC> w = load<VEC>(weight + p * VEC);
    Pack<T, VEC> o;
#pragma unroll
    for (int j = 0; j < VEC; ++j)
      o.v[j] = from_float<T>(to_float(w.v[j]) * (rstd * to_float(s.v[j])));
    store<VEC>(out + p * VEC, o);
  }
}

template <typename T, int VEC>
cudaError_t rms_norm_vec(const RmsNormArgs& a, cudaStream_t stream) {
  const int pieces = a.dim / VEC;
  int threads = (pieces + 31) / 32 * 32;
  threads = threads < 32 ? 32 : threads > 1024 ? 1024 : threads;
  if (a.residual != nullptr)
    rms_norm_kernel<T, VEC, true><<<a.rows, threads, 0, stream>>>(a);
  else
    rms_norm_kernel<T, VEC, false><<<a.rows, threads, 0, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t rms_norm(const RmsNormArgs& a, cudaStream_t stream) {
  if (a.rows == 0 || a.dim == 0) return cudaSuccess;
  const bool wide = vectorizable<T>(
      {a.x, a.residual != nullptr ? a.residual : a.x, a.weight, a.out},
      {a.dim, a.x_row_stride, a.residual_row_stride, a.out_row_stride});
  return wide ? rms_norm_vec<T, 16 / sizeof(T)>(a, stream) : rms_norm_vec<T, 1>(a, stream);
}

// ---- SiLU and multiply ----------------------------------------------------------------------

// torch's silu, x / (1 + exp(-x)) in float (IEEE division, the accurate expf), rounded to the
// dtype because today's code materializes it before the multiply.
template <typename T>
__device__ __forceinline__ T silu(T x) {
  const float f = to_float(x);
  return from_float<T>(__fdiv_rn(f, __fadd_rn(1.f, expf(-f))));
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) silu_and_mul_kernel(SiluMulArgs a) {
  const int pieces = a.inter / VEC;
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= int64_t(a.tokens) * pieces) return;
  const int c = static_cast<int>(i % pieces) * VEC;
  const int64_t token = i / pieces;
  const T* row = static_cast<const T*>(a.gate_up) + token * a.gate_up_row_stride;
  const Pack<T, VEC> gate = load<VEC>(row + c), up = load<VEC>(row + a.inter + c);
  Pack<T, VEC> out;
#pragma unroll
  for (int j = 0; j < VEC; ++j)
    out.v[j] = from_float<T>(__fmul_rn(to_float(silu(gate.v[j])), to_float(up.v[j])));
  store<VEC>(static_cast<T*>(a.out) + token * a.inter + c, out);
}

template <typename T>
cudaError_t silu_and_mul(const SiluMulArgs& a, cudaStream_t stream) {
  const bool wide = vectorizable<T>({a.gate_up, a.out}, {a.inter, a.gate_up_row_stride});
  constexpr int kVec = 16 / sizeof(T);
  const int64_t items = int64_t(a.tokens) * (wide ? a.inter / kVec : a.inter);
  if (items == 0) return cudaSuccess;
  if (wide)
    silu_and_mul_kernel<T, kVec><<<blocks_for(items), kThreads, 0, stream>>>(a);
  else
    silu_and_mul_kernel<T, 1><<<blocks_for(items), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

// ---- KV cache write -------------------------------------------------------------------------

__device__ __forceinline__ int64_t read_index(const void* table, int64_t at, int itemsize) {
  return itemsize == 8 ? static_cast<const int64_t*>(table)[at]
                       : static_cast<const int32_t*>(table)[at];
}

// A pure copy, so bytes move as V (16 down to 1 bytes, whatever every address allows); the
// threads of a warp take consecutive vectors of one head row, K rows then V rows of a token.
template <typename V>
__global__ void __launch_bounds__(kThreads) store_kv_kernel(StoreKVArgs a) {
  const int row_vecs = static_cast<int>(a.head_dim * a.itemsize / sizeof(V));
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= int64_t(a.tokens) * 2 * a.heads * row_vecs) return;
  const int w = static_cast<int>(i % row_vecs);
  const int64_t kind_head = i / row_vecs;
  const int head = static_cast<int>(kind_head % a.heads);
  const int kind = static_cast<int>(kind_head / a.heads % 2);  // 0: K, 1: V
  const int64_t token = kind_head / a.heads / 2;

  const int64_t page = read_index(a.pages, token * a.pages_stride, a.pages_itemsize);
  const int64_t row = read_index(a.rows, token * a.rows_stride, a.rows_itemsize);
  // index_put stops on an index out of range too; a write there would hit another page.
  if (page < 0 || page >= a.num_pages || row < 0 || row >= a.block_size) __trap();
  const int64_t src = kind == 0 ? token * a.k_token_stride + head * a.k_head_stride
                                : token * a.v_token_stride + head * a.v_head_stride;
  const char* from = static_cast<const char*>(kind == 0 ? a.k : a.v) + src * a.itemsize;
  const int64_t dst = page * a.kv_page_stride + kind * a.kv_kv_stride + head * a.kv_head_stride +
                      row * a.kv_row_stride;
  char* to = static_cast<char*>(a.kv) + dst * a.itemsize;
  reinterpret_cast<V*>(to)[w] = reinterpret_cast<const V*>(from)[w];
}

// The widest access (16, 8, 4, 2 or 1 bytes) that divides every address the copy touches.
int copy_width(const StoreKVArgs& a) {
  uint64_t bits = reinterpret_cast<uintptr_t>(a.kv) | reinterpret_cast<uintptr_t>(a.k) |
                  reinterpret_cast<uintptr_t>(a.v);
  for (int64_t stride : {a.kv_page_stride, a.kv_kv_stride, a.kv_head_stride, a.kv_row_stride,
                         a.k_token_stride, a.k_head_stride, a.v_token_stride, a.v_head_stride,
                         int64_t(a.head_dim)})
    bits |= static_cast<uint64_t>(stride * a.itemsize);
  int width = 16;
  while (width > 1 && bits % width != 0) width /= 2;
  return width;
}

template <typename V>
cudaError_t store_kv_as(const StoreKVArgs& a, cudaStream_t stream) {
  const int64_t items = int64_t(a.tokens) * 2 * a.heads * (a.head_dim * a.itemsize / sizeof(V));
  store_kv_kernel<V><<<blocks_for(items), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_rope_qk(const RopeQKArgs& a, DType dtype, cudaStream_t stream) {
  switch (dtype) {
    case DType::kFloat16: return rope_qk<__half>(a, stream);
    case DType::kBFloat16: return rope_qk<__nv_bfloat16>(a, stream);
    default: return cudaErrorInvalidValue;  // float32 runs the twin (addcmul's rounding)
  }
}

cudaError_t launch_rms_norm(const RmsNormArgs& a, DType dtype, cudaStream_t stream) {
  switch (dtype) {
    case DType::kFloat32: return rms_norm<float>(a, stream);
    case DType::kFloat16: return rms_norm<__half>(a, stream);
    case DType::kBFloat16: return rms_norm<__nv_bfloat16>(a, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_silu_and_mul(const SiluMulArgs& a, DType dtype, cudaStream_t stream) {
  switch (dtype) {
    case DType::kFloat32: return silu_and_mul<float>(a, stream);
    case DType::kFloat16: return silu_and_mul<__half>(a, stream);
    case DType::kBFloat16: return silu_and_mul<__nv_bfloat16>(a, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_store_kv(const StoreKVArgs& a, cudaStream_t stream) {
  if (a.tokens == 0 || a.heads == 0 || a.head_dim == 0) return cudaSuccess;
  switch (copy_width(a)) {
    case 16: return store_kv_as<uint4>(a, stream);
    case 8: return store_kv_as<uint2>(a, stream);
    case 4: return store_kv_as<uint32_t>(a, stream);
    case 2: return store_kv_as<uint16_t>(a, stream);
    default: return store_kv_as<uint8_t>(a, stream);
  }
}

}  // namespace shadowkv

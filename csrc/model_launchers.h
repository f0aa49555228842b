// Host entry points of the decoder layer's fused elementwise kernels (model_fusions.cu), in plain
// C++ like launchers.h: model_bindings.cpp is the only file that sees torch. Each replaces two to
// four tiny torch kernels whose launch gaps, not their bytes, cost the decode step its time.
// Every launcher enqueues on `stream`, allocates nothing and never synchronizes (the ops are
// captured in CUDA graphs). Strides are in elements; every last dim is contiguous. Each kernel
// rounds where the plain-torch twin in shadowkv_engine/ops/model_fusions.py rounds, so that the
// two agree bit for bit in 16-bit dtypes (rms_norm's float sum aside: see model_fusions.cu).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "launchers.h"  // DType

namespace shadowkv {

// NeoX-layout RoPE of the q and k heads of one qkv projection, written to two contiguous
// outputs: q = rotate(qk[:, :q_heads]), k = rotate(qk[:, q_heads:]). Float16/bfloat16 only.
struct RopeQKArgs {
  const void* qk;  // [tokens, q_heads + kv_heads, head_dim]
  int64_t qk_token_stride, qk_head_stride;
  const void* cos;  // [tokens, head_dim]
  const void* sin;  // [tokens, head_dim], first half negated (rope.signed_sin)
  int64_t cos_token_stride, sin_token_stride;
  void* q;  // [tokens, q_heads, head_dim] contiguous
  void* k;  // [tokens, kv_heads, head_dim] contiguous
  int tokens, q_heads, kv_heads, head_dim;  // head_dim even
};
cudaError_t launch_rope_qk(const RopeQKArgs& args, DType dtype, cudaStream_t stream);

// RMSNorm of each row, float32 inside: out = weight * (x * rsqrt(mean(x^2) + eps)). With a
// residual, first residual += x (rounded to the dtype) and the norm is of that sum; out may be x.
struct RmsNormArgs {
  const void* x;  // [rows, dim]
  int64_t x_row_stride;
  void* residual;  // [rows, dim], or null: a plain norm
  int64_t residual_row_stride;
  const void* weight;  // [dim]
  void* out;  // [rows, dim]
  int64_t out_row_stride;
  int rows, dim;
  float eps;
};
cudaError_t launch_rms_norm(const RmsNormArgs& args, DType dtype, cudaStream_t stream);

// out = silu(gate) * up for gate_up = [gate | up] along the last dim (the fused projection).
struct SiluMulArgs {
  const void* gate_up;  // [tokens, 2 * inter]
  int64_t gate_up_row_stride;
  void* out;  // [tokens, inter] contiguous
  int tokens, inter;
};
cudaError_t launch_silu_and_mul(const SiluMulArgs& args, DType dtype, cudaStream_t stream);

// The step's new K and V rows into the paged cache, one launch for both:
// kv[pages[t], layer, 0, h, rows[t]] = k[t, h] and kv[pages[t], layer, 1, h, rows[t]] = v[t, h].
// Rows that share a slot (the padding rows of a captured batch, all on the null page) leave one
// of their values there, as torch's index_put does. A page or row out of range traps.
struct StoreKVArgs {
  void* kv;  // kv[0, layer, 0]
  int64_t kv_page_stride, kv_kv_stride, kv_head_stride, kv_row_stride;
  int64_t num_pages;
  int block_size;
  const void* k;  // [tokens, heads, head_dim]
  int64_t k_token_stride, k_head_stride;
  const void* v;  // [tokens, heads, head_dim]
  int64_t v_token_stride, v_head_stride;
  const void* pages;  // [tokens] int32 or int64
  const void* rows;   // [tokens] int32 or int64
  int64_t pages_stride, rows_stride;
  int pages_itemsize, rows_itemsize;  // 4 or 8
  int tokens, heads, head_dim, itemsize;  // itemsize of kv, k and v
};
cudaError_t launch_store_kv(const StoreKVArgs& args, cudaStream_t stream);

}  // namespace shadowkv

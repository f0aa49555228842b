// torch op registration of the decoder layer's fused kernels (torch.ops.shadowkv.rope_qk,
// rms_norm, fused_add_rms_norm, silu_and_mul, store_kv), a fragment of the library that
// torch_bindings.cpp defines. Only metadata is inspected here (no host sync, no allocation
// besides returned outputs), so the ops can be captured in CUDA graphs. Semantics are those of
// the plain-torch twins in shadowkv_engine/ops/model_fusions.py.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <tuple>

#include "binding_checks.h"
#include "model_launchers.h"

namespace shadowkv {
namespace {

// A CUDA tensor of `like`'s device and dtype with `dims` dims and a contiguous last dim.
void check_rows(const at::Tensor& t, const char* name, const at::Tensor& like, int64_t dims) {
  TORCH_CHECK(t.is_cuda() && t.device() == like.device() && t.dim() == dims,
              name, " must be a CUDA tensor with ", dims, " dims on ", like.device(), ", got ",
              t.sizes(), " on ", t.device());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " is ", t.scalar_type(),
              ", expected ", like.scalar_type());
  TORCH_CHECK(t.size(-1) <= 1 || t.stride(-1) == 1, name, " must have a contiguous last dim");
}

int as_int(int64_t v, const char* what) {
  TORCH_CHECK(v >= 0 && v <= INT32_MAX, what, " ", v, " out of range");
  return static_cast<int>(v);
}

std::tuple<at::Tensor, at::Tensor> rope_qk(const at::Tensor& qk, const at::Tensor& cos,
                                           const at::Tensor& sin, int64_t num_q_heads) {
  TORCH_CHECK(qk.is_cuda() && qk.dim() == 3, "qk must be a CUDA tensor [T, Hq + Hk, D], got ",
              qk.sizes());
  TORCH_CHECK(qk.scalar_type() == at::kHalf || qk.scalar_type() == at::kBFloat16,
              "shadowkv.rope_qk: float16/bfloat16 only, got ", qk.scalar_type());
  check_rows(qk, "qk", qk, 3);
  const c10::cuda::CUDAGuard guard(qk.device());
  const int64_t tokens = qk.size(0), heads = qk.size(1), head_dim = qk.size(2);
  TORCH_CHECK(num_q_heads >= 0 && num_q_heads <= heads, "num_q_heads ", num_q_heads,
              " out of range for ", heads, " heads");
  TORCH_CHECK(head_dim % 2 == 0, "head_dim must be even, got ", head_dim);
  check_rows(cos, "cos", qk, 2);
  check_rows(sin, "sin", qk, 2);
  TORCH_CHECK(cos.size(0) == tokens && cos.size(1) == head_dim && sin.sizes() == cos.sizes(),
              "cos and sin must be [", tokens, ", ", head_dim, "], got ", cos.sizes(), " and ",
              sin.sizes());
  at::Tensor q = at::empty({tokens, num_q_heads, head_dim}, qk.options());
  at::Tensor k = at::empty({tokens, heads - num_q_heads, head_dim}, qk.options());

  RopeQKArgs a;
  a.qk = qk.data_ptr();
  a.qk_token_stride = qk.stride(0);
  a.qk_head_stride = qk.stride(1);
  a.cos = cos.data_ptr();
  a.sin = sin.data_ptr();
  a.cos_token_stride = cos.stride(0);
  a.sin_token_stride = sin.stride(0);
  a.q = q.data_ptr();
  a.k = k.data_ptr();
  a.tokens = as_int(tokens, "tokens");
  a.q_heads = as_int(num_q_heads, "num_q_heads");
  a.kv_heads = as_int(heads - num_q_heads, "kv heads");
  a.head_dim = as_int(head_dim, "head_dim");
  check_launch(launch_rope_qk(a, dtype_of(qk), c10::cuda::getCurrentCUDAStream()), "rope_qk");
  return {q, k};
}

// x [rows, dim] and weight [dim]; residual, where given, of x's shape.
RmsNormArgs norm_args(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 2, "x must be a CUDA tensor [rows, dim], got ", x.sizes());
  check_rows(x, "x", x, 2);
  check_rows(weight, "weight", x, 1);
  TORCH_CHECK(weight.size(0) == x.size(1), "weight has ", weight.size(0), " entries, x rows ",
              x.size(1));
  dtype_of(x);  // rejects any other dtype
  RmsNormArgs a;
  a.x = x.data_ptr();
  a.x_row_stride = x.stride(0);
  a.residual = nullptr;
  a.residual_row_stride = 0;
  a.weight = weight.data_ptr();
  a.rows = as_int(x.size(0), "rows");
  a.dim = as_int(x.size(1), "dim");
  a.eps = static_cast<float>(eps);
  return a;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  RmsNormArgs a = norm_args(x, weight, eps);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty(x.sizes(), x.options());
  a.out = out.data_ptr();
  a.out_row_stride = out.stride(0);
  check_launch(launch_rms_norm(a, dtype_of(x), c10::cuda::getCurrentCUDAStream()), "rms_norm");
  return out;
}

void fused_add_rms_norm(at::Tensor x, at::Tensor residual, const at::Tensor& weight,
                        double eps) {
  RmsNormArgs a = norm_args(x, weight, eps);
  const c10::cuda::CUDAGuard guard(x.device());
  check_rows(residual, "residual", x, 2);
  TORCH_CHECK(residual.sizes() == x.sizes(), "residual ", residual.sizes(), " must match x ",
              x.sizes());
  TORCH_CHECK(!residual.is_same(x), "residual and x must be different tensors");
  a.residual = residual.data_ptr();
  a.residual_row_stride = residual.stride(0);
  a.out = x.data_ptr();
  a.out_row_stride = x.stride(0);
  check_launch(launch_rms_norm(a, dtype_of(x), c10::cuda::getCurrentCUDAStream()),
               "fused_add_rms_norm");
}

at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  TORCH_CHECK(gate_up.is_cuda() && gate_up.dim() == 2 && gate_up.size(1) % 2 == 0,
              "gate_up must be a CUDA tensor [T, 2 * I], got ", gate_up.sizes());
  check_rows(gate_up, "gate_up", gate_up, 2);
  const c10::cuda::CUDAGuard guard(gate_up.device());
  const int64_t inter = gate_up.size(1) / 2;
  at::Tensor out = at::empty({gate_up.size(0), inter}, gate_up.options());
  SiluMulArgs a;
  a.gate_up = gate_up.data_ptr();
  a.gate_up_row_stride = gate_up.stride(0);
  a.out = out.data_ptr();
  a.tokens = as_int(gate_up.size(0), "tokens");
  a.inter = as_int(inter, "intermediate size");
  check_launch(launch_silu_and_mul(a, dtype_of(gate_up), c10::cuda::getCurrentCUDAStream()),
               "silu_and_mul");
  return out;
}

void check_index(const at::Tensor& t, const char* name, const at::Tensor& kv, int64_t tokens) {
  TORCH_CHECK(t.device() == kv.device() && t.dim() == 1 && t.size(0) == tokens &&
              (t.scalar_type() == at::kInt || t.scalar_type() == at::kLong),
              name, " must be an int32/int64 tensor [", tokens, "] on ", kv.device(), ", got ",
              t.scalar_type(), " ", t.sizes(), " on ", t.device());
}

void store_kv(at::Tensor kv, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pages,
              const at::Tensor& rows, int64_t layer) {
  TORCH_CHECK(kv.is_cuda() && kv.dim() == 6 && kv.size(2) == 2,
              "kv must be a CUDA tensor [pages, L, 2, H, block_size, D], got ", kv.sizes());
  TORCH_CHECK(layer >= 0 && layer < kv.size(1), "layer ", layer, " out of range");
  TORCH_CHECK(kv.stride(5) == 1, "kv must have a contiguous last dim");
  const c10::cuda::CUDAGuard guard(kv.device());
  check_rows(k, "k", kv, 3);
  check_rows(v, "v", kv, 3);
  const int64_t tokens = k.size(0), heads = kv.size(3), head_dim = kv.size(5);
  TORCH_CHECK(k.size(1) == heads && k.size(2) == head_dim && v.sizes() == k.sizes(),
              "k and v must be [T, ", heads, ", ", head_dim, "], got ", k.sizes(), " and ",
              v.sizes());
  check_index(pages, "pages", kv, tokens);
  check_index(rows, "rows", kv, tokens);

  StoreKVArgs a;
  a.kv = static_cast<char*>(kv.data_ptr()) + layer * kv.stride(1) * kv.element_size();
  a.kv_page_stride = kv.stride(0);
  a.kv_kv_stride = kv.stride(2);
  a.kv_head_stride = kv.stride(3);
  a.kv_row_stride = kv.stride(4);
  a.num_pages = kv.size(0);
  a.block_size = as_int(kv.size(4), "block_size");
  a.k = k.data_ptr();
  a.k_token_stride = k.stride(0);
  a.k_head_stride = k.stride(1);
  a.v = v.data_ptr();
  a.v_token_stride = v.stride(0);
  a.v_head_stride = v.stride(1);
  a.pages = pages.data_ptr();
  a.rows = rows.data_ptr();
  a.pages_stride = pages.stride(0);
  a.rows_stride = rows.stride(0);
  a.pages_itemsize = static_cast<int>(pages.element_size());
  a.rows_itemsize = static_cast<int>(rows.element_size());
  a.tokens = as_int(tokens, "tokens");
  a.heads = as_int(heads, "heads");
  a.head_dim = as_int(head_dim, "head_dim");
  a.itemsize = static_cast<int>(kv.element_size());
  check_launch(launch_store_kv(a, c10::cuda::getCurrentCUDAStream()), "store_kv");
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(shadowkv, m) {
  m.def("rope_qk(Tensor qk, Tensor cos, Tensor sin, int num_q_heads) -> (Tensor, Tensor)");
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  m.def("fused_add_rms_norm(Tensor(a!) x, Tensor(b!) residual, Tensor weight, float eps) -> ()");
  m.def("silu_and_mul(Tensor gate_up) -> Tensor");
  m.def("store_kv(Tensor(a!) kv, Tensor k, Tensor v, Tensor pages, Tensor rows, int layer) -> ()");
}

TORCH_LIBRARY_IMPL(shadowkv, CUDA, m) {
  m.impl("rope_qk", &rope_qk);
  m.impl("rms_norm", &rms_norm);
  m.impl("fused_add_rms_norm", &fused_add_rms_norm);
  m.impl("silu_and_mul", &silu_and_mul);
  m.impl("store_kv", &store_kv);
}

}  // namespace shadowkv

// torch op registration of the ShadowKV kernels (torch.ops.shadowkv.*): argument checks, tensor
// to raw-pointer translation, and the launch on the current stream. Only metadata is inspected
// here (no host sync, no allocation besides returned outputs), so the ops can be captured in CUDA
// graphs. Semantics are those of the plain-torch twins in shadowkv_engine/ops/.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "binding_checks.h"
#include "launchers.h"

namespace shadowkv {
namespace {

// Attributes are read per call (cudaDeviceGetAttribute is cheap and sync-free), so the ops
// follow whichever device the tensors are on.
int device_attribute(cudaDeviceAttr attr) {
  int device = 0, value = 0;
  check_launch(cudaGetDevice(&device), "device query");
  check_launch(cudaDeviceGetAttribute(&value, attr, device), "device query");
  return value;
}

// SHADOWKV_REBUILD_KERNEL picks the key rebuild's kernel, for tests and A/B benchmarks; read per
// call so that a test can switch it.
RebuildKernel rebuild_kernel_from_env() {
  const char* value = std::getenv("SHADOWKV_REBUILD_KERNEL");
  const std::string name = value == nullptr ? "" : value;
  if (name.empty() || name == "auto") return RebuildKernel::kAuto;
  if (name == "streaming") return RebuildKernel::kStreaming;
  if (name == "mma_sync") return RebuildKernel::kMmaSync;
  TORCH_CHECK(false, "SHADOWKV_REBUILD_KERNEL=", name, " is not one of auto, streaming, mma_sync");
}

size_t max_block_smem() {
  return static_cast<size_t>(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
}

void check_int_table(const at::Tensor& t, const char* name, int64_t dims) {
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kInt && t.dim() == dims && t.is_contiguous(),
              name, " must be a contiguous int32 CUDA tensor with ", dims, " dims, got ",
              t.scalar_type(), " ", t.sizes(), " on ", t.device());
}

void check_aligned(const at::Tensor& t, const char* name, std::initializer_list<int64_t> dims) {
  const int64_t item = t.element_size();
  TORCH_CHECK(t.stride(-1) == 1, name, " must have a contiguous last dim");
  for (int64_t d : dims)
    TORCH_CHECK(t.stride(d) * item % 16 == 0, name, ": stride of dim ", d, " must be a multiple "
                "of 16 bytes for vector access, got ", t.stride(d) * item);
}

// Per-head rows [pages, L, H, rows, D] (landmarks, basis), read by 16-byte vectors.
void check_head_rows(const at::Tensor& head_rows, int64_t layer) {
  TORCH_CHECK(head_rows.is_cuda() && head_rows.dim() == 5,
              "head_rows must be a CUDA tensor [pages, L, H, rows, D], got ", head_rows.sizes());
  TORCH_CHECK(layer >= 0 && layer < head_rows.size(1), "layer ", layer, " out of range");
  check_aligned(head_rows, "head_rows", {0, 1, 2, 3});
}

// fetch [B, H, K] plus the slot tables, checked against kv [Pg, L, 2, H, bs, D].
SlotTables slot_tables(const at::Tensor& kv, const at::Tensor& slot_pages,
                       const at::Tensor& row_offset, const at::Tensor& fetch, int64_t chunk_size) {
  check_int_table(fetch, "fetch", 3);
  check_int_table(slot_pages, "slot_pages", 2);
  check_int_table(row_offset, "row_offset", 1);
  const int64_t batch = fetch.size(0), heads = fetch.size(1), block_size = kv.size(4);
  TORCH_CHECK(heads == kv.size(3), "fetch has ", heads, " heads, kv has ", kv.size(3));
  TORCH_CHECK(slot_pages.size(0) == batch && row_offset.size(0) == batch,
              "slot_pages and row_offset must have one row per sequence (", batch, ")");
  TORCH_CHECK(chunk_size > 0, "chunk_size must be positive, got ", chunk_size);
  SlotTables t;
  t.slot_pages = slot_pages.data_ptr<int32_t>();
  t.row_offset = row_offset.data_ptr<int32_t>();
  t.fetch = fetch.data_ptr<int32_t>();
  t.slot_cols = static_cast<int>(slot_pages.size(1));
  t.batch = static_cast<int>(batch);
  t.heads = static_cast<int>(heads);
  t.slots = static_cast<int>(fetch.size(2));
  t.chunk_size = static_cast<int>(chunk_size);
  t.block_size = static_cast<int>(block_size);
  return t;
}

void check_kv(const at::Tensor& kv, int64_t layer) {
  TORCH_CHECK(kv.is_cuda() && kv.dim() == 6 && kv.size(2) == 2,
              "kv must be a CUDA tensor [pages, L, 2, H, block_size, D], got ", kv.sizes());
  TORCH_CHECK(layer >= 0 && layer < kv.size(1), "layer ", layer, " out of range");
  check_aligned(kv, "kv", {0, 1, 2, 3, 4});
}

// Where the GPU can read the pinned store: its own address under UVA, else the mapped alias.
const void* device_view(const at::Tensor& store) {
  const void* host = store.data_ptr();
  if (store.numel() == 0) return host;  // an empty host tier: every page is on the device
  if (device_attribute(cudaDevAttrUnifiedAddressing) &&
      device_attribute(cudaDevAttrCanUseHostPointerForRegisteredMem))
    return host;
  void* dev = nullptr;
  check_launch(cudaHostGetDevicePointer(&dev, const_cast<void*>(host), 0), "gather_values");
  return dev;
}

// The value store's device tier, device_store[0, layer], or null where there is none. It must
// have the host tier's layout (the kernels address both with the host tier's strides).
char* device_tier(const std::optional<at::Tensor>& device_store, const at::Tensor& store,
                  const at::Tensor& on_device, int64_t layer) {
  if (!device_store.has_value() || device_store->numel() == 0) return nullptr;
  const at::Tensor& tier = *device_store;
  TORCH_CHECK(tier.device() == on_device.device(), "device_store must be on ", on_device.device(),
              ", got ", tier.device());
  TORCH_CHECK(tier.scalar_type() == store.scalar_type(), "device_store is ", tier.scalar_type(),
              " but store is ", store.scalar_type());
  TORCH_CHECK(tier.dim() == 5 && tier.sizes().slice(1) == store.sizes().slice(1) &&
              tier.strides() == store.strides(),
              "device_store ", tier.sizes(), " must have the layout of store ", store.sizes());
  return static_cast<char*>(tier.data_ptr()) + layer * tier.stride(1) * tier.element_size();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> plan_chunk_reuse(const at::Tensor& resident,
                                                                const at::Tensor& selected) {
  check_int_table(resident, "resident", 2);
  check_int_table(selected, "selected", 2);
  TORCH_CHECK(resident.sizes() == selected.sizes(), "resident ", resident.sizes(),
              " and selected ", selected.sizes(), " must have the same shape");
  const c10::cuda::CUDAGuard guard(resident.device());
  const int64_t rows = resident.size(0), k = resident.size(1);
  const size_t smem = plan_smem_bytes(static_cast<int>(k));
  TORCH_CHECK(smem <= max_block_smem(),
              "shadowkv.plan_chunk_reuse: ", k, " slots need ", smem,
              " bytes of shared memory, more than this device offers");
  at::Tensor new_resident = at::empty_like(resident);
  at::Tensor fetch = at::empty_like(resident);
  at::Tensor hits = at::empty({rows}, resident.options());
  PlanArgs a{resident.data_ptr<int32_t>(), selected.data_ptr<int32_t>(),
             new_resident.data_ptr<int32_t>(), fetch.data_ptr<int32_t>(),
             hits.data_ptr<int32_t>(), static_cast<int>(rows), static_cast<int>(k)};
  check_launch(launch_plan_chunk_reuse(a, c10::cuda::getCurrentCUDAStream()), "plan_chunk_reuse");
  return {new_resident, fetch, hits};
}

at::Tensor select_chunks(const at::Tensor& scores, at::Tensor resident, const at::Tensor& slots,
                         int64_t layer, at::Tensor hits) {
  TORCH_CHECK(scores.is_cuda() && scores.scalar_type() == at::kFloat && scores.dim() == 3 &&
              scores.is_contiguous(),
              "scores must be a contiguous float32 CUDA tensor [batch, heads, chunks], got ",
              scores.scalar_type(), " ", scores.sizes());
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t batch = scores.size(0), heads = scores.size(1), chunks = scores.size(2);
  TORCH_CHECK(resident.is_cuda() && resident.scalar_type() == at::kInt && resident.dim() == 4 &&
              resident.is_contiguous() && resident.size(2) == heads,
              "resident must be a contiguous int32 CUDA tensor [slots, layers, ", heads,
              ", k], got ", resident.scalar_type(), " ", resident.sizes());
  TORCH_CHECK(layer >= 0 && layer < resident.size(1), "layer ", layer, " out of range");
  TORCH_CHECK(slots.is_cuda() && slots.scalar_type() == at::kLong && slots.dim() == 1 &&
              slots.size(0) == batch && slots.is_contiguous(),
              "slots must be a contiguous int64 CUDA tensor [", batch, "], got ",
              slots.scalar_type(), " ", slots.sizes());
  TORCH_CHECK(hits.is_cuda() && hits.scalar_type() == at::kLong && hits.dim() == 1 &&
              hits.size(0) == resident.size(0) && hits.is_contiguous(),
              "hits must be a contiguous int64 CUDA tensor with one counter per slot (",
              resident.size(0), "), got ", hits.sizes());
  TORCH_CHECK(chunks < INT32_MAX, "too many chunks: ", chunks);
  const int64_t k = resident.size(3);
  const size_t smem = select_smem_bytes(static_cast<int>(chunks), static_cast<int>(k));
  TORCH_CHECK(smem <= max_block_smem(), "shadowkv.select_chunks: ", chunks, " chunks and ", k,
              " slots need ", smem, " bytes of shared memory, more than this device offers");
  at::Tensor fetch = at::empty({batch, heads, k}, resident.options());
  SelectArgs a;
  a.scores = scores.data_ptr<float>();
  a.resident = resident.data_ptr<int32_t>() + layer * resident.stride(1);
  a.resident_slot_stride = resident.stride(0);
  a.slots = slots.data_ptr<int64_t>();
  a.fetch = fetch.data_ptr<int32_t>();
  a.hits = reinterpret_cast<unsigned long long*>(hits.data_ptr<int64_t>());
  a.batch = static_cast<int>(batch);
  a.heads = static_cast<int>(heads);
  a.num_chunks = static_cast<int>(chunks);
  a.k = static_cast<int>(k);
  check_launch(launch_select_chunks(a, c10::cuda::getCurrentCUDAStream()), "select_chunks");
  return fetch;
}

void project_coefficients(const at::Tensor& k_pre, const at::Tensor& head_rows,
                          const at::Tensor& basis_pages, int64_t layer, int64_t rank,
                          at::Tensor u_rows, const at::Tensor& u_page, const at::Tensor& u_row) {
  check_head_rows(head_rows, layer);
  const c10::cuda::CUDAGuard guard(head_rows.device());
  const int64_t heads = head_rows.size(2), head_dim = head_rows.size(4);
  TORCH_CHECK(k_pre.is_cuda() && k_pre.dim() == 3 && k_pre.size(1) == heads &&
              k_pre.size(2) == head_dim && k_pre.scalar_type() == head_rows.scalar_type(),
              "k_pre must be [batch, ", heads, ", ", head_dim, "] of head_rows' dtype, got ",
              k_pre.scalar_type(), " ", k_pre.sizes());
  TORCH_CHECK(k_pre.stride(2) == 1, "k_pre must have a contiguous last dim");
  const int64_t batch = k_pre.size(0), item = head_rows.element_size();
  TORCH_CHECK(head_dim * item % 16 == 0, "head_dim * itemsize must be a multiple of 16 bytes");
  check_int_table(basis_pages, "basis_pages", 2);
  TORCH_CHECK(basis_pages.size(0) == batch, "basis_pages needs one row per sequence (", batch,
              ")");
  const int64_t rows_per_page = head_rows.size(3);
  TORCH_CHECK(rank > 0 && basis_pages.size(1) * rows_per_page >= rank, "basis_pages has ",
              basis_pages.size(1), " pages of ", rows_per_page, " rows: too few for rank ", rank);
  TORCH_CHECK(u_rows.is_cuda() && u_rows.dim() == 4 && u_rows.size(3) == rank &&
              u_rows.stride(3) == 1 && u_rows.scalar_type() == head_rows.scalar_type() &&
              u_rows.size(1) == head_rows.size(1),
              "u_rows must be [pages, L, tokens, ", rank, "] of head_rows' dtype, got ",
              u_rows.scalar_type(), " ", u_rows.sizes());
  for (const at::Tensor* t : {&u_page, &u_row})
    TORCH_CHECK(t->is_cuda() && t->scalar_type() == at::kLong && t->dim() == 1 &&
                t->size(0) == batch && t->is_contiguous(),
                "u_page and u_row must be contiguous int64 CUDA tensors [", batch, "]");
  TORCH_CHECK(project_supports(static_cast<int>(heads), static_cast<int>(head_dim),
                               static_cast<int>(item)) &&
              project_smem_bytes(static_cast<int>(heads), static_cast<int>(head_dim)) <=
              max_block_smem(),
              "shadowkv.project_coefficients: key rows of ", heads, " x ", head_dim, " x ", item,
              " bytes are wider than the kernel's 8 KiB");
  ProjectArgs a;
  a.k_pre = k_pre.data_ptr();
  a.k_batch_stride = k_pre.stride(0);
  a.k_head_stride = k_pre.stride(1);
  a.basis = static_cast<const char*>(head_rows.data_ptr()) + layer * head_rows.stride(1) * item;
  TORCH_CHECK(reinterpret_cast<uintptr_t>(a.basis) % 16 == 0, "head_rows must be 16-byte aligned");
  a.basis_pages = basis_pages.data_ptr<int32_t>();
  a.basis_cols = static_cast<int>(basis_pages.size(1));
  a.basis_rows_per_page = static_cast<int>(rows_per_page);
  a.basis_page_stride = head_rows.stride(0);
  a.basis_head_stride = head_rows.stride(2);
  a.basis_row_stride = head_rows.stride(3);
  a.u = static_cast<char*>(u_rows.data_ptr()) + layer * u_rows.stride(1) * item;
  a.u_page_stride = u_rows.stride(0);
  a.u_row_stride = u_rows.stride(2);
  a.u_page = u_page.data_ptr<int64_t>();
  a.u_row = u_row.data_ptr<int64_t>();
  a.batch = static_cast<int>(batch);
  a.heads = static_cast<int>(heads);
  a.head_dim = static_cast<int>(head_dim);
  a.rank = static_cast<int>(rank);
  check_launch(launch_project_coefficients(a, dtype_of(head_rows),
                                           c10::cuda::getCurrentCUDAStream()),
               "project_coefficients");
}

void gather_values(const at::Tensor& store, at::Tensor kv, const at::Tensor& store_pages,
                   const at::Tensor& slot_pages, const at::Tensor& row_offset,
                   const at::Tensor& fetch, int64_t layer, int64_t chunk_size,
                   const std::optional<at::Tensor>& device_store,
                   const std::optional<at::Tensor>& host_chunks,
                   const std::optional<at::Tensor>& slots, int64_t max_blocks) {
  check_kv(kv, layer);
  TORCH_CHECK(max_blocks >= 0 && max_blocks <= INT32_MAX, "max_blocks must be in [0, 2^31), got ",
              max_blocks);
  const c10::cuda::CUDAGuard guard(kv.device());
  TORCH_CHECK(store.device().is_cpu() && (store.is_pinned() || store.numel() == 0) &&
              store.dim() == 5, "store must be a pinned CPU tensor [pages, L, H, block_size, D]");
  TORCH_CHECK(store.scalar_type() == kv.scalar_type(), "store and kv dtypes differ");
  TORCH_CHECK(store.size(1) == kv.size(1) && store.size(2) == kv.size(3) &&
              store.size(3) == kv.size(4) && store.size(4) == kv.size(5),
              "store ", store.sizes(), " does not match kv ", kv.sizes());
  check_aligned(store, "store", {0, 1, 2, 3});
  check_int_table(store_pages, "store_pages", 2);
  TORCH_CHECK(store_pages.size(0) == fetch.size(0), "store_pages needs one row per sequence");
  const int64_t item = kv.element_size();
  TORCH_CHECK(kv.size(5) * item % 16 == 0, "head_dim * itemsize must be a multiple of 16 bytes");

  GatherArgs a;
  a.t = slot_tables(kv, slot_pages, row_offset, fetch, chunk_size);
  a.store = static_cast<const char*>(device_view(store)) + layer * store.stride(1) * item;
  a.kv = static_cast<char*>(kv.data_ptr()) + (layer * kv.stride(1) + kv.stride(2)) * item;
  TORCH_CHECK(reinterpret_cast<uintptr_t>(a.store) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(a.kv) % 16 == 0, "store and kv must be 16-byte aligned");
  a.device_store = device_tier(device_store, store, kv, layer);
  a.host_pages = store.size(0);
  a.store_pages = store_pages.data_ptr<int32_t>();
  a.store_cols = static_cast<int>(store_pages.size(1));
  a.host_chunks = nullptr;
  a.slots = nullptr;
  if (host_chunks.has_value()) {
    TORCH_CHECK(slots.has_value(), "host_chunks needs slots");
    TORCH_CHECK(host_chunks->device() == kv.device() && host_chunks->scalar_type() == at::kLong &&
                host_chunks->dim() == 1 && host_chunks->is_contiguous(),
                "host_chunks must be a contiguous int64 vector on ", kv.device());
    TORCH_CHECK(slots->device() == kv.device() && slots->scalar_type() == at::kLong &&
                slots->dim() == 1 && slots->is_contiguous() && slots->size(0) == fetch.size(0),
                "slots must be a contiguous int64 vector of one counter index per sequence");
    a.host_chunks = reinterpret_cast<unsigned long long*>(host_chunks->data_ptr<int64_t>());
    a.slots = slots->data_ptr<int64_t>();
  }
  a.store_page_stride = store.stride(0);
  a.store_head_stride = store.stride(2);
  a.store_row_stride = store.stride(3);
  a.kv_page_stride = kv.stride(0);
  a.kv_head_stride = kv.stride(3);
  a.kv_row_stride = kv.stride(4);
  a.row_bytes = static_cast<int>(kv.size(5) * item);
  a.itemsize = static_cast<int>(item);
  a.max_blocks = static_cast<int>(max_blocks);
  check_launch(launch_gather_values(a, c10::cuda::getCurrentCUDAStream()), "gather_values");
}

void rebuild_keys(const at::Tensor& u_rows, const at::Tensor& basis, at::Tensor kv,
                  const at::Tensor& u_pages, const at::Tensor& basis_pages,
                  const at::Tensor& slot_pages, const at::Tensor& row_offset,
                  const at::Tensor& fetch, const at::Tensor& inv_freq, int64_t layer,
                  int64_t chunk_size, int64_t rank) {
  check_kv(kv, layer);
  const c10::cuda::CUDAGuard guard(kv.device());
  const int64_t heads = kv.size(3), head_dim = kv.size(5);
  TORCH_CHECK(rebuild_supports_head_dim(static_cast<int>(head_dim)),
              "shadowkv.rebuild_keys: head_dim ", head_dim, " has no kernel (64, 128, 256)");
  TORCH_CHECK(u_rows.is_cuda() && u_rows.dim() == 4 && u_rows.scalar_type() == kv.scalar_type(),
              "u_rows must be [pages, L, tokens_per_page, rank] of kv's dtype on CUDA");
  TORCH_CHECK(rank >= 1 && rank <= u_rows.size(3), "rank ", rank, " exceeds u_rows' ",
              u_rows.size(3));
  TORCH_CHECK(u_rows.stride(3) == 1, "u_rows rows must be contiguous");
  TORCH_CHECK(basis.is_cuda() && basis.dim() == 5 && basis.scalar_type() == kv.scalar_type() &&
              basis.size(2) == heads && basis.size(4) == head_dim,
              "basis must be [pages, L, H, rows, D] matching kv, got ", basis.sizes());
  check_aligned(basis, "basis", {0, 1, 2, 3});
  TORCH_CHECK(inv_freq.is_cuda() && inv_freq.scalar_type() == at::kFloat &&
              inv_freq.is_contiguous() && inv_freq.numel() == head_dim / 2,
              "inv_freq must be a contiguous float32 CUDA tensor of head_dim/2 entries");
  check_int_table(u_pages, "u_pages", 2);
  check_int_table(basis_pages, "basis_pages", 2);
  TORCH_CHECK(u_pages.size(0) == fetch.size(0) && basis_pages.size(0) == fetch.size(0),
              "u_pages and basis_pages need one row per sequence");
  const DType dtype = dtype_of(kv);
  const size_t smem = rebuild_smem_bytes(dtype, static_cast<int>(head_dim));
  TORCH_CHECK(smem <= max_block_smem(),
              "shadowkv.rebuild_keys: needs ", smem, " bytes of shared memory per block");
  const int64_t item = kv.element_size();

  RebuildArgs a;
  a.t = slot_tables(kv, slot_pages, row_offset, fetch, chunk_size);
  a.u = static_cast<const char*>(u_rows.data_ptr()) + layer * u_rows.stride(1) * item;
  a.basis = static_cast<const char*>(basis.data_ptr()) + layer * basis.stride(1) * item;
  a.kv = static_cast<char*>(kv.data_ptr()) + layer * kv.stride(1) * item;
  TORCH_CHECK(reinterpret_cast<uintptr_t>(a.basis) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(a.kv) % 16 == 0, "basis and kv must be 16-byte aligned");
  a.u_aligned = reinterpret_cast<uintptr_t>(a.u) % 16 == 0 && u_rows.stride(0) * item % 16 == 0 &&
                u_rows.stride(2) * item % 16 == 0;
  a.inv_freq = inv_freq.data_ptr<float>();
  a.u_pages = u_pages.data_ptr<int32_t>();
  a.basis_pages = basis_pages.data_ptr<int32_t>();
  a.u_cols = static_cast<int>(u_pages.size(1));
  a.basis_cols = static_cast<int>(basis_pages.size(1));
  a.u_page_stride = u_rows.stride(0);
  a.u_row_stride = u_rows.stride(2);
  a.basis_page_stride = basis.stride(0);
  a.basis_head_stride = basis.stride(2);
  a.basis_row_stride = basis.stride(3);
  a.kv_page_stride = kv.stride(0);
  a.kv_head_stride = kv.stride(3);
  a.kv_row_stride = kv.stride(4);
  a.u_tokens_per_page = static_cast<int>(u_rows.size(2));
  a.basis_rows_per_page = static_cast<int>(basis.size(3));
  a.rank = static_cast<int>(rank);
  a.head_dim = static_cast<int>(head_dim);
  a.kernel = rebuild_kernel_from_env();
  check_launch(launch_rebuild_keys(a, dtype, c10::cuda::getCurrentCUDAStream()), "rebuild_keys");
}

void score_chunks_paged(const at::Tensor& q, const at::Tensor& head_rows,
                        const at::Tensor& lm_pages, const at::Tensor& n_chunks,
                        const at::Tensor& excluded, int64_t layer, at::Tensor scores) {
  check_head_rows(head_rows, layer);
  const c10::cuda::CUDAGuard guard(head_rows.device());
  const int64_t heads = head_rows.size(2), head_dim = head_rows.size(4);
  TORCH_CHECK(q.is_cuda() && q.dim() == 3 && q.scalar_type() == head_rows.scalar_type() &&
              q.size(2) == head_dim && q.size(1) % heads == 0,
              "q must be [batch, q_heads, D] of head_rows' dtype with q_heads a multiple of ",
              heads, ", got ", q.scalar_type(), " ", q.sizes());
  const int64_t batch = q.size(0), group = q.size(1) / heads;
  TORCH_CHECK(score_chunks_supports(static_cast<int>(head_dim), static_cast<int>(group)),
              "shadowkv.score_chunks_paged: no kernel for head_dim ", head_dim, " and GQA group ",
              group, " (head dims 64/128/256, groups 1-8)");
  check_int_table(lm_pages, "lm_pages", 2);
  check_int_table(n_chunks, "n_chunks", 1);
  TORCH_CHECK(lm_pages.size(0) == batch && n_chunks.size(0) == batch,
              "lm_pages and n_chunks need one row per sequence (", batch, ")");
  TORCH_CHECK(excluded.is_cuda() && excluded.dim() == 3 && excluded.size(0) == batch &&
              excluded.size(1) == heads &&
              (excluded.scalar_type() == at::kInt || excluded.scalar_type() == at::kLong) &&
              (excluded.size(2) <= 1 || excluded.stride(2) == 1),
              "excluded must be int32/int64 [batch, heads, X] with contiguous rows, got ",
              excluded.scalar_type(), " ", excluded.sizes());
  TORCH_CHECK(scores.is_cuda() && scores.scalar_type() == at::kFloat && scores.dim() == 3 &&
              scores.size(0) == batch && scores.size(1) == heads && scores.is_contiguous(),
              "scores must be a contiguous float32 CUDA tensor [batch, heads, max_chunks], got ",
              scores.sizes());
  const int64_t max_chunks = scores.size(2), rows_per_page = head_rows.size(3);
  TORCH_CHECK(lm_pages.size(1) * rows_per_page >= max_chunks, "lm_pages has ", lm_pages.size(1),
              " pages of ", rows_per_page, " rows: too few for ", max_chunks, " chunks");
  const int64_t item = head_rows.element_size();

  ScoreArgs a;
  a.q = q.data_ptr();
  a.landmarks =
      static_cast<const char*>(head_rows.data_ptr()) + layer * head_rows.stride(1) * item;
  TORCH_CHECK(reinterpret_cast<uintptr_t>(a.landmarks) % 16 == 0,
              "head_rows must be 16-byte aligned");
  a.pages = lm_pages.data_ptr<int32_t>();
  a.n_chunks = n_chunks.data_ptr<int32_t>();
  a.excluded = excluded.data_ptr();
  a.scores = scores.data_ptr<float>();
  a.q_batch_stride = q.stride(0);
  a.q_head_stride = q.stride(1);
  a.q_dim_stride = q.stride(2);
  a.page_stride = head_rows.stride(0);
  a.head_stride = head_rows.stride(2);
  a.row_stride = head_rows.stride(3);
  a.excluded_batch_stride = excluded.stride(0);
  a.excluded_head_stride = excluded.stride(1);
  a.excluded_itemsize = static_cast<int>(excluded.element_size());
  a.num_excluded = static_cast<int>(excluded.size(2));
  a.page_cols = static_cast<int>(lm_pages.size(1));
  a.rows_per_page = static_cast<int>(rows_per_page);
  a.batch = static_cast<int>(batch);
  a.heads = static_cast<int>(heads);
  a.group = static_cast<int>(group);
  a.head_dim = static_cast<int>(head_dim);
  a.max_chunks = static_cast<int>(max_chunks);
  const DType dtype = dtype_of(head_rows);
  // The caching allocator makes this workspace safe inside CUDA graphs.
  at::Tensor workspace = at::empty({static_cast<int64_t>(score_chunks_workspace_floats(a, dtype))},
                                   scores.options());
  a.workspace = workspace.data_ptr<float>();
  check_launch(launch_score_chunks(a, dtype, c10::cuda::getCurrentCUDAStream()),
               "score_chunks_paged");
}

void check_row_index(const at::Tensor& t, const char* name, const at::Tensor& values) {
  TORCH_CHECK(t.device() == values.device() && t.dim() == 1 && t.size(0) == values.size(0) &&
              (t.scalar_type() == at::kInt || t.scalar_type() == at::kLong),
              name, " must be an int32/int64 tensor [", values.size(0), "] on ", values.device(),
              ", got ", t.scalar_type(), " ", t.sizes(), " on ", t.device());
}

void offload_values(at::Tensor store, const at::Tensor& values, const at::Tensor& pages,
                    const at::Tensor& offsets, int64_t layer,
                    const std::optional<at::Tensor>& device_store) {
  TORCH_CHECK(values.is_cuda() && values.dim() == 3, "values must be a CUDA tensor [rows, H, D], "
              "got ", values.sizes(), " on ", values.device());
  const c10::cuda::CUDAGuard guard(values.device());
  TORCH_CHECK(store.device().is_cpu() && (store.is_pinned() || store.numel() == 0) &&
              store.dim() == 5,
              "store must be a pinned CPU tensor [pages, L, H, block_size, D], got ",
              store.sizes(), " on ", store.device(), store.is_pinned() ? "" : " (not pinned)");
  TORCH_CHECK(store.scalar_type() == values.scalar_type(), "store is ", store.scalar_type(),
              " but values are ", values.scalar_type());
  TORCH_CHECK(store.size(2) == values.size(1) && store.size(4) == values.size(2),
              "store ", store.sizes(), " does not match values ", values.sizes());
  TORCH_CHECK(layer >= 0 && layer < store.size(1), "layer ", layer, " out of range");
  check_row_index(pages, "pages", values);
  check_row_index(offsets, "offsets", values);
  const int64_t item = values.element_size();
  TORCH_CHECK(values.size(2) * item % 16 == 0,
              "head_dim * itemsize must be a multiple of 16 bytes, got ", values.size(2) * item);
  check_aligned(values, "values", {0, 1});
  check_aligned(store, "store", {0, 1, 2, 3});

  OffloadArgs a;
  // device_view hands out a read-only address; the pinned store is ours to write.
  a.store = static_cast<char*>(const_cast<void*>(device_view(store))) +
            layer * store.stride(1) * item;
  a.device_store = device_tier(device_store, store, values, layer);
  a.host_pages = store.size(0);
  a.values = values.data_ptr();
  TORCH_CHECK(reinterpret_cast<uintptr_t>(a.store) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(a.values) % 16 == 0,
              "store and values must be 16-byte aligned");
  a.pages = pages.data_ptr();
  a.offsets = offsets.data_ptr();
  a.pages_stride = pages.stride(0);
  a.offsets_stride = offsets.stride(0);
  a.pages_itemsize = static_cast<int>(pages.element_size());
  a.offsets_itemsize = static_cast<int>(offsets.element_size());
  a.values_row_stride = values.stride(0);
  a.values_head_stride = values.stride(1);
  a.store_page_stride = store.stride(0);
  a.store_head_stride = store.stride(2);
  a.store_row_stride = store.stride(3);
  a.rows = static_cast<int>(values.size(0));
  a.heads = static_cast<int>(values.size(1));
  a.row_bytes = static_cast<int>(values.size(2) * item);
  a.itemsize = static_cast<int>(item);
  check_launch(launch_offload_values(a, c10::cuda::getCurrentCUDAStream()), "offload_values");
}

}  // namespace

TORCH_LIBRARY(shadowkv, m) {
  m.def("plan_chunk_reuse(Tensor resident, Tensor selected) -> (Tensor, Tensor, Tensor)");
  m.def("select_chunks(Tensor scores, Tensor(a!) resident, Tensor slots, int layer, "
        "Tensor(b!) hits) -> Tensor");
  m.def("project_coefficients(Tensor k_pre, Tensor head_rows, Tensor basis_pages, int layer, "
        "int rank, Tensor(a!) u_rows, Tensor u_page, Tensor u_row) -> ()");
  m.def("gather_values(Tensor store, Tensor(a!) kv, Tensor store_pages, Tensor slot_pages, "
        "Tensor row_offset, Tensor fetch, int layer, int chunk_size, Tensor? device_store=None, "
        "Tensor(b!)? host_chunks=None, Tensor? slots=None, int max_blocks=0) -> ()");
  m.def("rebuild_keys(Tensor u_rows, Tensor basis, Tensor(a!) kv, Tensor u_pages, "
        "Tensor basis_pages, Tensor slot_pages, Tensor row_offset, Tensor fetch, "
        "Tensor inv_freq, int layer, int chunk_size, int rank) -> ()");
  m.def("score_chunks_paged(Tensor q, Tensor head_rows, Tensor lm_pages, Tensor n_chunks, "
        "Tensor excluded, int layer, Tensor(a!) scores) -> ()");
  m.def("offload_values(Tensor(a!) store, Tensor values, Tensor pages, Tensor offsets, "
        "int layer, Tensor(b!)? device_store=None) -> ()");
}

TORCH_LIBRARY_IMPL(shadowkv, CUDA, m) {
  m.impl("plan_chunk_reuse", &plan_chunk_reuse);
  m.impl("select_chunks", &select_chunks);
  m.impl("project_coefficients", &project_coefficients);
  m.impl("gather_values", &gather_values);
  m.impl("rebuild_keys", &rebuild_keys);
  m.impl("score_chunks_paged", &score_chunks_paged);
  m.impl("offload_values", &offload_values);
}

}  // namespace shadowkv

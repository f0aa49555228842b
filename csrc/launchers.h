// Host entry points of the ShadowKV kernels, in plain C++ (no torch types), so that the kernel
// sources build with nvcc alone and torch_bindings.cpp is the only file that sees torch.
// Every launcher enqueues on `stream`, allocates nothing and never synchronizes, so the ops can
// be captured in CUDA graphs. Strides are in elements of the tensor's dtype.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace shadowkv {

enum class DType { kFloat32, kFloat16, kBFloat16 };

// Hit/miss plan of one row per (sequence, KV head): see shadowkv_engine/ops/chunk_plan.py.
struct PlanArgs {
  const int32_t* resident;  // [rows, k]
  const int32_t* selected;  // [rows, k]
  int32_t* new_resident;    // [rows, k]
  int32_t* fetch;           // [rows, k]
  int32_t* hits;            // [rows]
  int rows, k;
};
// Dynamic shared memory a plan of k slots needs; the caller checks it against the device limit.
size_t plan_smem_bytes(int k);
cudaError_t launch_plan_chunk_reuse(const PlanArgs& args, cudaStream_t stream);

// Top-k chunk selection and the hit/miss plan of one layer, one row per (sequence, KV head),
// updating the decode state in place: see shadowkv_engine/ops/chunk_selection.py.
struct SelectArgs {
  const float* scores;          // [batch, heads, num_chunks], -inf: not selectable
  int32_t* resident;            // resident[0, layer]: [slots, ..., heads, k] with slot stride
  int64_t resident_slot_stride;  // elements between two batch slots' rows of one layer
  const int64_t* slots;         // [batch] batch slot of each sequence
  int32_t* fetch;               // [batch, heads, k] out: the chunk each slot loads, or -1
  unsigned long long* hits;     // [slots] counters: += the row's hits
  int batch, heads, num_chunks, k;
};
// Dynamic shared memory the selection needs; the caller checks it against the device limit.
size_t select_smem_bytes(int num_chunks, int k);
cudaError_t launch_select_chunks(const SelectArgs& args, cudaStream_t stream);

// Coefficient rows of new tokens: u[u_page[b], u_row[b], r] = sum_{h,d} k_pre[b, h, d] *
// basis_b[h, r, d], the basis read in place from its pages. See
// shadowkv_engine/ops/coefficients.py.
struct ProjectArgs {
  const void* k_pre;  // [batch, heads, head_dim], rows 16-byte aligned
  int64_t k_batch_stride, k_head_stride;
  const void* basis;  // head_rows[0, layer], rows 16-byte aligned
  const int32_t* basis_pages;  // [batch, basis_cols]
  int basis_cols, basis_rows_per_page;
  int64_t basis_page_stride, basis_head_stride, basis_row_stride;
  void* u;  // u_rows[0, layer]
  int64_t u_page_stride, u_row_stride;
  const int64_t* u_page;  // [batch]
  const int64_t* u_row;   // [batch]
  int batch, heads, head_dim, rank;
};
// Basis rows the kernel holds in registers: H*D*itemsize up to 8 KiB (the twin otherwise).
bool project_supports(int heads, int head_dim, int itemsize);
size_t project_smem_bytes(int heads, int head_dim);
cudaError_t launch_project_coefficients(const ProjectArgs& args, DType dtype, cudaStream_t stream);

// Page tables shared by the value gather and the key rebuild (see ops/paged.py).
struct SlotTables {
  const int32_t* slot_pages;  // [batch, slot_cols] GPU pages of the exact rows
  const int32_t* row_offset;  // [batch] first slot row
  const int32_t* fetch;       // [batch, heads, slots] chunk id per slot, or -1
  int slot_cols;
  int batch, heads, slots, chunk_size, block_size;
};

// Copies the values of every fetched chunk from the pinned host store into the kv pages.
// The value store has two tiers with the same layout: pages 0 .. host_pages - 1 lie in pinned
// host memory (read over PCIe), pages from host_pages on in device memory (device_store).
struct GatherArgs {
  const void* store;         // device-visible address of store[0, layer] (pinned host memory)
  const void* device_store;  // device_store[0, layer], or null when the device tier is empty
  int64_t host_pages;
  void* kv;                  // kv[0, layer, 1]
  const int32_t* store_pages;  // [batch, store_cols]
  int store_cols;
  // Optional (null: not counted): host_chunks[slots[b]] += chunks of row b read from host memory.
  unsigned long long* host_chunks;
  const int64_t* slots;  // [batch]
  int64_t store_page_stride, store_head_stride, store_row_stride;
  int64_t kv_page_stride, kv_head_stride, kv_row_stride;
  int row_bytes;  // head_dim * itemsize, a multiple of 16
  int itemsize;
  // At most this many blocks (0: as many as keep every SM full). A fetch that runs beside other
  // kernels (two-batch overlap) takes a few SMs only: its blocks loop until the fetch is done,
  // and PCIe's bandwidth needs far fewer warps in flight than the GPU has.
  int max_blocks;
  SlotTables t;
};
cudaError_t launch_gather_values(const GatherArgs& args, cudaStream_t stream);

// Which rebuild kernel runs (SHADOWKV_REBUILD_KERNEL, for tests and A/B benchmarks). kAuto: the
// resident-basis kernel where the basis fits in shared memory (wgmma on sm_90a builds), the
// streaming kernel otherwise; kMmaSync: the resident kernel on mma.sync even where wgmma exists.
enum class RebuildKernel { kAuto, kStreaming, kMmaSync };

// Rebuilds post-RoPE keys of every fetched chunk: RoPE(u_t @ basis_h, t) into kv[.., 0, ..].
struct RebuildArgs {
  const void* u;      // u_rows[0, layer]
  const void* basis;  // basis[0, layer]
  void* kv;           // kv[0, layer, 0]
  const float* inv_freq;       // [head_dim / 2]
  const int32_t* u_pages;      // [batch, u_cols]
  const int32_t* basis_pages;  // [batch, basis_cols]
  int u_cols, basis_cols;
  int64_t u_page_stride, u_row_stride;
  int64_t basis_page_stride, basis_head_stride, basis_row_stride;
  int64_t kv_page_stride, kv_head_stride, kv_row_stride;
  int u_tokens_per_page, basis_rows_per_page, rank, head_dim;
  bool u_aligned;  // coefficient rows start on 16-byte boundaries (vector loads allowed)
  RebuildKernel kernel;
  SlotTables t;
};
// Head dims with a compiled kernel.
bool rebuild_supports_head_dim(int head_dim);
size_t rebuild_smem_bytes(DType dtype, int head_dim);
cudaError_t launch_rebuild_keys(const RebuildArgs& args, DType dtype, cudaStream_t stream);

}  // namespace shadowkv

// ---- landmark scoring (score_chunks.cu) -----------------------------------------------------
namespace shadowkv {

// Scores the landmarks of every (sequence, KV head) read in place from their pages: per query
// head a softmax over chunks (float32 logits q.k / sqrt(D), excluded ids at -inf), then the max
// over the G query heads of each KV head; -inf past a sequence's chunk count. See
// shadowkv_engine/ops/chunk_scores.py.
struct ScoreArgs {
  const void* q;          // q[0, 0, 0], [batch, heads * group, head_dim], any strides
  const void* landmarks;  // head_rows[0, layer], 16-byte aligned rows
  const int32_t* pages;   // [batch, page_cols] landmark pages, chunk n at row n % rows_per_page
                          // of page n / rows_per_page
  const int32_t* n_chunks;  // [batch] chunks of each sequence (at most max_chunks are read)
  const void* excluded;     // [batch, heads, num_excluded] int32 or int64 chunk ids
  float* scores;            // [batch, heads, max_chunks], contiguous
  float* workspace;         // score_chunks_workspace_floats(...) floats
  int64_t q_batch_stride, q_head_stride, q_dim_stride;
  int64_t page_stride, head_stride, row_stride;
  int64_t excluded_batch_stride, excluded_head_stride;
  int excluded_itemsize;  // 4 or 8
  int num_excluded;
  int page_cols, rows_per_page;
  int batch, heads, group, head_dim, max_chunks;
};
bool score_chunks_supports(int head_dim, int group);  // head dims 64/128/256, group 1..8
size_t score_chunks_workspace_floats(const ScoreArgs& args, DType dtype);
cudaError_t launch_score_chunks(const ScoreArgs& args, DType dtype, cudaStream_t stream);

}  // namespace shadowkv

// ---- value offload (offload_values.cu) ------------------------------------------------------
namespace shadowkv {

// Writes value rows into the value store: store[pages[i], layer, h, offsets[i]] = values[i, h]
// for every row i and head h (pages from host_pages on are device_store's, as for the gather).
// See shadowkv_engine/ops/value_offload.py.
struct OffloadArgs {
  void* store;         // device-visible address of store[0, layer] (pinned host memory)
  void* device_store;  // device_store[0, layer] (pages from host_pages on), or null
  int64_t host_pages;
  const void* values;  // values[0, 0], [rows, heads, D] with 16-byte aligned rows
  const void* pages;   // [rows] int32 or int64 store pages
  const void* offsets;  // [rows] int32 or int64 rows within the page
  int64_t pages_stride, offsets_stride;
  int pages_itemsize, offsets_itemsize;  // 4 or 8
  int64_t values_row_stride, values_head_stride;
  int64_t store_page_stride, store_head_stride, store_row_stride;
  int rows, heads;
  int row_bytes;  // head_dim * itemsize, a multiple of 16
  int itemsize;
};
cudaError_t launch_offload_values(const OffloadArgs& args, cudaStream_t stream);

}  // namespace shadowkv

// Fused key rebuild with the head's basis resident in shared memory (16-bit keys).
//
// Block = one (sequence, KV head) and a segment of its slots. The prologue compacts the
// segment's fetched slots and looks up, per row, where its coefficients live and where its key
// goes; the basis [rank, D] is loaded once. Then row tiles stream through a cp.async ring of
// 2-4 stages, so that the coefficient rows of the next tiles are in flight while the current
// tile is multiplied (ldmatrix + mma.sync m16n8k16, float accumulators) and rotated.
//
// A warp computes 16 rows x 64 dims: 32 dims of the first half and their 32 RoPE partners, so
// RoPE is applied in registers. The basis columns are stored permuted within each 32-dim group
// (a 4x4 transpose of 2-dim words) so that a thread's accumulators come out as 8 consecutive
// dims of one row: one 16-byte store each, no shuffles.
//
// Why this shape (H100, rank 160, D 128): the op must move ~576 bytes per row (320 read, 256
// written) against ~41 kFLOP, so it should run at HBM speed. With 8 warps of 32-row tiles the
// SM issued one instruction every 2.7 cycles per scheduler (Nsight Compute: 2 warps per
// scheduler, stalled on dependent arithmetic), so this version runs 16 warps of 16-row tiles
// and spends fewer instructions per row.
#include <cuda_runtime.h>

#include "block_scan.cuh"
#include "cp_async.cuh"
#include "launchers.h"
#include "mma_sm80.cuh"
#include "rebuild_resident.h"
#include "rope_sincos.cuh"

namespace shadowkv {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxBlockRows = 1024;  // rows one block takes on at most (row tables in smem)
constexpr int kMaxStages = 4;

// A warp computes a 16-row x 64-dim tile: dims [32c, 32c + 32) and their RoPE partners D/2 on.
template <int D>
struct Geometry {
  static_assert(D % 64 == 0 && D <= 256, "head dims 64, 128, 256");
  static constexpr int kHalf = D / 2;
  static constexpr int kColGroups = D / 64;
  static constexpr int kRowGroups = kWarps / kColGroups;
  static constexpr int kTileRows = 16 * kRowGroups;
  // Shared-memory row strides are odd multiples of 16 bytes: the 8 rows an ldmatrix reads then
  // fall in 8 different bank groups.
  static constexpr int kLdb = D + 8;
};

// Shared-memory column of basis dim d: within each 32-dim group, 2-dim word 4a + b is stored at
// word 4b + a. Then the mma's n-tile j, columns 2t and 2t + 1 (thread t of a quad) hold dims
// 8t + 2j and 8t + 2j + 1 of the group, and a thread's four n-tiles cover dims 8t .. 8t + 7.
__device__ __forceinline__ int permuted_column(int d) {
  const int word = (d & 31) >> 1;
  return (d & ~31) + (((word & 3) * 4 + (word >> 2)) << 1) + (d & 1);
}

__host__ __device__ inline int padded_rank(int rank) { return (rank + 15) / 16 * 16; }
__host__ __device__ inline int coeff_stride(int rank_pad) {
  return (rank_pad / 8) % 2 == 1 ? rank_pad : rank_pad + 8;
}

// Shared-memory plan of one launch, in bytes from the start of the dynamic allocation.
struct SmemPlan {
  int rank_pad, lda, stages, block_slots;
  unsigned stage_offset, stage_bytes, tables_offset, total;
};

template <int D>
SmemPlan plan_smem(int rank, int block_rows, int chunk_size, size_t max_bytes) {
  using G = Geometry<D>;
  SmemPlan p{};
  p.rank_pad = padded_rank(rank);
  p.lda = coeff_stride(p.rank_pad);
  p.block_slots = block_rows / chunk_size > 0 ? block_rows / chunk_size : 1;
  const size_t basis = size_t(p.rank_pad) * G::kLdb * 2;
  const size_t stage = size_t(G::kTileRows) * p.lda * 2;
  // Per row: coefficient offset, key offset (int64 each), token (int32); the token table also
  // holds the compacted slot and chunk lists during the prologue.
  const int rows = p.block_slots * chunk_size;
  const size_t tables = size_t(rows) * 16 + size_t(rows > 2 * p.block_slots ? rows : 2 * p.block_slots) * 4;
  p.stage_offset = unsigned(basis);
  p.stage_bytes = unsigned(stage);
  const size_t room = max_bytes > basis + tables ? max_bytes - basis - tables : 0;
  p.stages = int(room / stage < kMaxStages ? room / stage : kMaxStages);
  p.tables_offset = unsigned(basis + p.stages * stage);
  p.total = unsigned(p.tables_offset + tables);
  return p;
}

__device__ __forceinline__ void wait_for_stage(int pending) {
  if (pending <= 0) cp_async_wait<0>();
  else if (pending == 1) cp_async_wait<1>();
  else cp_async_wait<2>();
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1)
    rebuild_resident_kernel(RebuildArgs a, SmemPlan p) {
  using G = Geometry<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int warp_totals[32];
  T* basis_s = reinterpret_cast<T*>(smem);
  int64_t* row_u = reinterpret_cast<int64_t*>(smem + p.tables_offset);
  const int block_rows = p.block_slots * a.t.chunk_size;
  int64_t* row_dst = row_u + block_rows;
  int* row_token = reinterpret_cast<int*>(row_dst + block_rows);

  const SlotTables& t = a.t;
  const int head = blockIdx.y, b = blockIdx.z, C = t.chunk_size;
  const int32_t* fetch = t.fetch + (int64_t(b) * t.heads + head) * t.slots;
  const int32_t* u_pages = a.u_pages + int64_t(b) * a.u_cols;
  const int32_t* slot_pages = t.slot_pages + int64_t(b) * t.slot_cols;
  const int row_offset = t.row_offset[b];
  const int first_slot = blockIdx.x * p.block_slots;

  // Prologue: compact the fetched slots (hits cost nothing), then tabulate their rows, one row
  // a thread so that the page-table lookups of all rows are in flight together. 32-bit index
  // math: 64-bit division is a long software routine.
  int* slot_list = row_token;   // borrowed until the row tables are written
  int* chunk_list = row_token + p.block_slots;
  int num_fetched = 0;
  for (int base = 0; base < p.block_slots; base += kThreads) {
    const int s = first_slot + base + threadIdx.x;
    const int chunk = base + threadIdx.x < p.block_slots && s < t.slots ? fetch[s] : -1;
    int total;
    const int q = num_fetched + block_exclusive_scan(chunk >= 0, warp_totals, total);
    if (chunk >= 0) {
      slot_list[q] = s;
      chunk_list[q] = chunk;
    }
    num_fetched += total;
  }
  if (num_fetched == 0) return;
  __syncthreads();  // the last slots written after the scan's barrier
  const int num_rows = num_fetched * C;
  constexpr int kRowsPerThread = kMaxBlockRows / kThreads;
  int slot[kRowsPerThread], token[kRowsPerThread];
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int row = threadIdx.x + k * kThreads, q = row / C;
    slot[k] = row < num_rows ? slot_list[q] : 0;
    token[k] = row < num_rows ? chunk_list[q] * C + (row - q * C) : 0;
  }
  __syncthreads();  // slot_list and chunk_list are read; row_token may be overwritten
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int row = threadIdx.x + k * kThreads;
    if (row >= num_rows) continue;
    const int i = row % C, dst_row = int(row_offset) + slot[k] * C + i;
    row_u[row] = int64_t(u_pages[token[k] / a.u_tokens_per_page]) * a.u_page_stride +
                 int64_t(token[k] % a.u_tokens_per_page) * a.u_row_stride;
    row_dst[row] = int64_t(slot_pages[dst_row / t.block_size]) * a.kv_page_stride +
                   head * a.kv_head_stride + int64_t(dst_row % t.block_size) * a.kv_row_stride;
    row_token[row] = token[k];
  }
  __syncthreads();

  const int num_tiles = (num_rows + G::kTileRows - 1) / G::kTileRows;
  const T* u = static_cast<const T*>(a.u);

  // The basis rides in the first tile's cp.async group, in 4-byte words to permute its columns;
  // rows past the rank are zeros.
  {
    const int32_t* basis_pages = a.basis_pages + int64_t(b) * a.basis_cols;
    const T* basis = static_cast<const T*>(a.basis);
    constexpr int kWords = D / 2;
    for (int v = threadIdx.x; v < p.rank_pad * kWords; v += kThreads) {
      const int j = v / kWords, d = (v % kWords) * 2;
      const T* src = basis;
      if (j < a.rank)
        src = basis + int64_t(basis_pages[j / a.basis_rows_per_page]) * a.basis_page_stride +
              head * a.basis_head_stride + int64_t(j % a.basis_rows_per_page) * a.basis_row_stride +
              d;
      cp_async4(basis_s + j * G::kLdb + permuted_column(d), src, j < a.rank ? 4 : 0);
    }
  }

  // Coefficient rows of one tile into a stage; columns past the rank and rows past the end are
  // zeros (a NaN there would spread through the product).
  // This thread's vectors: the first at (row r0, vector c0), then every kThreads-th; the same
  // for every tile, stepped without divisions.
  const int vecs = p.rank_pad / 8;
  const int r0 = threadIdx.x / vecs, c0 = threadIdx.x % vecs;
  const int step_rows = kThreads / vecs, step_vecs = kThreads % vecs;
  auto load_tile = [&](int tile, int stage) {
    T* dst = reinterpret_cast<T*>(smem + p.stage_offset + size_t(stage) * p.stage_bytes);
    const int first_row = tile * G::kTileRows;
    for (int r = r0, c = c0; r < G::kTileRows; r += step_rows, c += step_vecs) {
      if (c >= vecs) {
        c -= vecs;
        ++r;
        if (r >= G::kTileRows) break;
      }
      const int row = first_row + r, col = c * 8;
      const int64_t off = row < num_rows ? row_u[row] : -1;
      const int n = off >= 0 ? max(0, min(8, a.rank - col)) : 0;
      T* d = dst + r * p.lda + col;
      if (a.u_aligned) {
        cp_async16(d, n > 0 ? u + off + col : u, n * 2);
      } else {  // rows not 16-byte aligned (odd ranks): element copies
        const unsigned short* src = reinterpret_cast<const unsigned short*>(u + (n > 0 ? off : 0));
        unsigned short* out = reinterpret_cast<unsigned short*>(d);
#pragma unroll
        for (int e = 0; e < 8; ++e) out[e] = e < n ? src[col + e] : 0;
      }
    }
  };

  const int S = p.stages;
  for (int s = 0; s < S - 1; ++s) {
    if (s < num_tiles) load_tile(s, s);
    cp_async_commit();
  }

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int col_group = warp % G::kColGroups, warp_row0 = (warp / G::kColGroups) * 16;
  const int g = lane >> 2, tq = lane & 3;
  // This thread's dims in the first half: col_group*32 + 8tq + 2j + e (see permuted_column).
  const int dim0 = col_group * 32 + 8 * tq;
  float freq[4][2];
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) freq[j][e] = __ldg(a.inv_freq + dim0 + 2 * j + e);

  // ldmatrix row addresses (bytes): A rows warp_row0 + lane%16, k half lane/16; B k rows
  // lane%8 + 8*(lane/8 % 2), 8-column half lane/16, for the four 16-column pairs.
  const uint32_t a_lane = ((warp_row0 + (lane & 15)) * p.lda + (lane >> 4) * 8) * 2;
  const uint32_t b_lane = smem_address(basis_s) +
                          (((lane & 7) + ((lane >> 3) & 1) * 8) * G::kLdb + (lane >> 4) * 8 +
                           col_group * 32) * 2;
  constexpr int kColPair[4] = {0, 16, G::kHalf, G::kHalf + 16};
  T* kv = static_cast<T*>(a.kv);

  for (int tile = 0; tile < num_tiles; ++tile) {
    wait_for_stage(S - 2);
    __syncthreads();  // this tile's stage visible to all; the previous tile's stage free
    const int next = tile + S - 1;
    if (next < num_tiles) load_tile(next, next % S);
    cp_async_commit();

    const int tile_rows = min(G::kTileRows, num_rows - tile * G::kTileRows);
    if (warp_row0 >= tile_rows) continue;  // warp-uniform: this warp's rows are all padding

    float acc[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;

    const uint32_t a_base = smem_address(smem + p.stage_offset + size_t(tile % S) * p.stage_bytes) +
                            a_lane;
#pragma unroll 2
    for (int k0 = 0; k0 < p.rank_pad; k0 += 16) {
      uint32_t af[4], bf[4][4];
      ldmatrix_x4(af, a_base + k0 * 2);
#pragma unroll
      for (int q = 0; q < 4; ++q)
        ldmatrix_x4_trans(bf[q], b_lane + (k0 * G::kLdb + kColPair[q]) * 2);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        mma_16816<T>(acc[2 * q], af, bf[q][0], bf[q][1]);
        mma_16816<T>(acc[2 * q + 1], af, bf[q][2], bf[q][3]);
      }
    }

    // RoPE in registers: acc[j] (first-half dims dim0 + 2j + e) pairs with acc[j + 4] (+ D/2);
    // rows g (h = 0) and g + 8 (h = 1) of the warp's 16.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp_row0 + h * 8 + g;
      const int row = tile * G::kTileRows + r;
      if (r >= tile_rows) continue;
      const float position = float(row_token[row]);
      uint32_t lo[4], hi[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float out_lo[2], out_hi[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float s, c;
          rope_sincos(position, freq[j][e], &s, &c);
          const float x = acc[j][2 * h + e], y = acc[j + 4][2 * h + e];
          out_lo[e] = x * c - y * s;
          out_hi[e] = y * c + x * s;
        }
        lo[j] = pack2<T>(out_lo[0], out_lo[1]);
        hi[j] = pack2<T>(out_hi[0], out_hi[1]);
      }
      T* dst = kv + row_dst[row] + dim0;
      *reinterpret_cast<uint4*>(dst) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
      *reinterpret_cast<uint4*>(dst + G::kHalf) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    }
  }
  cp_async_wait<0>();
}

template <typename T, int D>
cudaError_t launch(const RebuildArgs& a, size_t max_smem, int num_sms, cudaStream_t stream) {
  // Rows per block: enough blocks to fill every SM, at most kMaxBlockRows so the row tables fit.
  const int64_t rows = int64_t(a.t.batch) * a.t.heads * a.t.slots * a.t.chunk_size;
  const int tile = Geometry<D>::kTileRows;
  int64_t block_rows = rows / num_sms / tile * tile;
  block_rows = block_rows < tile ? tile : (block_rows > kMaxBlockRows ? kMaxBlockRows : block_rows);
  const SmemPlan p = plan_smem<D>(a.rank, int(block_rows), a.t.chunk_size, max_smem);
  if (p.stages < 2) return cudaErrorInvalidConfiguration;  // rebuild_resident_fits said no
  cudaError_t err = cudaFuncSetAttribute(rebuild_resident_kernel<T, D>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, int(p.total));
  if (err != cudaSuccess) return err;
  const dim3 grid((a.t.slots + p.block_slots - 1) / p.block_slots, a.t.heads, a.t.batch);
  rebuild_resident_kernel<T, D><<<grid, kThreads, p.total, stream>>>(a, p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_for_dim(const RebuildArgs& a, size_t max_smem, int num_sms,
                           cudaStream_t stream) {
  switch (a.head_dim) {
    case 64: return launch<T, 64>(a, max_smem, num_sms, stream);
    case 128: return launch<T, 128>(a, max_smem, num_sms, stream);
    case 256: return launch<T, 256>(a, max_smem, num_sms, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

bool rebuild_resident_fits(const RebuildArgs& a, DType dtype, size_t max_block_smem) {
  if (dtype == DType::kFloat32 || a.t.chunk_size > kMaxBlockRows) return false;
  // The largest row tables a launch may use (kMaxBlockRows) must fit beside two stages.
  switch (a.head_dim) {
    case 64: return plan_smem<64>(a.rank, kMaxBlockRows, a.t.chunk_size, max_block_smem).stages >= 2;
    case 128: return plan_smem<128>(a.rank, kMaxBlockRows, a.t.chunk_size, max_block_smem).stages >= 2;
    case 256: return plan_smem<256>(a.rank, kMaxBlockRows, a.t.chunk_size, max_block_smem).stages >= 2;
    default: return false;
  }
}

cudaError_t launch_rebuild_resident(const RebuildArgs& a, DType dtype, size_t max_block_smem,
                                    int num_sms, cudaStream_t stream) {
  if (dtype == DType::kFloat16) return launch_for_dim<__half>(a, max_block_smem, num_sms, stream);
  if (dtype == DType::kBFloat16)
    return launch_for_dim<__nv_bfloat16>(a, max_block_smem, num_sms, stream);
  return cudaErrorInvalidValue;
}

}  // namespace shadowkv

// Fused key rebuild with the head's basis resident in shared memory (16-bit keys).
//
// Block = one (sequence, KV head) and a segment of its slots. The prologue compacts the
// segment's fetched slots and looks up, per row, where its coefficients live and where its key
// goes; the basis [rank, D] is loaded once. Then row tiles stream through a cp.async ring of
// 2-4 stages, so that the coefficient rows of the next tiles are in flight while the current
// tile is multiplied (float accumulators) and rotated. The product runs on Hopper's warpgroup
// wgmma where the build targets sm_90a (both operands read from shared memory by descriptor),
// and on ldmatrix + mma.sync m16n8k16 elsewhere (sm_80, plain sm_90) or when
// SHADOWKV_REBUILD_KERNEL=mma_sync asks for it; each has its shared-memory layout (SmemLayout).
//
// A warp computes 16 rows x 64 dims: 32 dims of the first half and their 32 RoPE partners, so
// RoPE is applied in registers; the four warps of a warpgroup take 64 consecutive rows of the
// same 64 dims (one m64n64k16 wgmma per 16-wide rank step). The basis columns are stored permuted
// (basis_column) so that those 64 dims are adjacent and a thread's accumulators come out as 8
// consecutive dims of one row: one 16-byte store each, no shuffles.
//
// Why this shape (rank 160, D 128): the op must move ~576 bytes per row (320 read, 256 written)
// against ~41 kFLOP, so it should run at HBM speed. On mma.sync it is bound by instruction
// latency (Nsight Compute: ~0.4 instructions issued per cycle per scheduler, stalled on ldmatrix
// results, the shared-memory queue and the RoPE's sin/cos); wgmma takes the ldmatrix and most of
// the product's instructions away (-16% time on an H200, docs/benchmarks.md). What is left is
// the memory system, whose first limit is L2 tag lookups, one per request: so every copy reads
// whole rows per warp instruction (a version that read 64 bytes of each of 8 rows per
// instruction, for conflict-free shared-memory writes, was much slower). Earlier, on mma.sync:
// two 8-warp blocks per SM instead of one 16-warp block, so one block's prologue overlaps the
// other's product (-16%); warp-per-row coefficient copies with the row addresses tabulated once
// (-17%); an unrolled product loop with immediate addresses, a page lookup per basis row instead
// of per word, fast division (together -5%).
#include <cuda_runtime.h>

#include "block_scan.cuh"
#include "cp_async.cuh"
#include "fast_divide.cuh"
#include "launchers.h"
#include "mma_sm80.cuh"
#include "rebuild_resident.h"
#include "rope_sincos.cuh"
#include "wgmma_sm90.cuh"

namespace shadowkv {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxBlockRows = 1024;  // rows one block takes on at most (row tables in smem)
constexpr int kMaxStages = 4;
constexpr int kSwizzleAlignment = 512;  // bytes; the dynamic shared memory is rounded up to it
// The product loop is unrolled over at most this many 16-wide rank steps (ranks up to 288), so
// that its shared-memory addresses are immediates: a loop-carried address register stalled every
// step on the ldmatrix still reading it (Nsight Compute: half of the loop's stalls).
constexpr int kMaxRankSteps = 18;

// A warp computes a 16-row x 64-dim tile: column group c is dims [32c, 32c + 32) and their RoPE
// partners D/2 on; the warps of a column group take consecutive 16-row strips.
template <int D>
struct Geometry {
  static_assert(D % 64 == 0 && D <= 256, "head dims 64, 128, 256");
  static constexpr int kHalf = D / 2;
  static constexpr int kColGroups = D / 64;
  static constexpr int kWarpsPerColGroup = kWarps / kColGroups;
  static constexpr int kTileRows = 16 * kWarpsPerColGroup;
  // wgmma needs whole warpgroups on 64-row strips (head dims 64 and 128).
  static constexpr bool kWarpgroupTiles = kWarpsPerColGroup % 4 == 0;
};

// Row vectors (16 bytes) of a padded row of rank_pad 16-bit values: an odd number, so that the
// 8 rows an ldmatrix reads fall in 8 different bank groups.
__host__ __device__ inline int padded_row_vectors(int rank_pad) {
  return (rank_pad / 8) % 2 == 1 ? rank_pad / 8 : rank_pad / 8 + 1;
}

// Shared-memory layouts of a coefficient stage and of the basis (bytes from their starts), one
// per product. Both are written by warps copying a row per instruction (a row is then one request
// to L2, whose tag lookups this kernel runs out of first when requests are scattered), and the
// basis columns are permuted by basis_column.
template <int D, bool kWgmma>
struct SmemLayout;

// wgmma: the canonical layouts of wgmma_sm90.cuh. Coefficients K-major with the 64-byte swizzle:
// 32-wide rank blocks one after the other, in each 8-row atoms of 512 bytes (a row's 16-byte
// vectors in four bank groups). Basis N-major without swizzle: core matrices of 8 rank rows x 8
// columns adjacent in the columns, then in the rank. Stages must be 512-byte aligned.
template <int D>
struct SmemLayout<D, true> {
  // Bytes of a tile's 32-wide rank block of coefficients, and between basis core matrices
  // adjacent in the rank (8 rank rows).
  static constexpr int kCoeffBlockBytes = Geometry<D>::kTileRows * 64;
  static constexpr int kBasisKCoreBytes = D * 16;
  __device__ static uint32_t coeff(int row, int vector, int /*rank_pad*/) {
    return (vector >> 2) * kCoeffBlockBytes + (row >> 3) * 512 + (row & 7) * 64 +
           (((vector & 3) ^ ((row >> 1) & 3)) << 4);
  }
  __device__ static uint32_t basis(int k, int column) {
    return (k >> 3) * kBasisKCoreBytes + (column >> 3) * 128 + (k & 7) * 16 + (column & 7) * 2;
  }
};

// mma.sync: row-major, coefficient rows padded to an odd number of vectors and basis rows by one
// vector, so that ldmatrix and the copies meet no bank conflicts.
template <int D>
struct SmemLayout<D, false> {
  static constexpr int kBasisRowBytes = (D + 8) * 2;
  __device__ static uint32_t coeff(int row, int vector, int rank_pad) {
    return (row * padded_row_vectors(rank_pad) + vector) * 16;
  }
  __device__ static uint32_t basis(int k, int column) { return k * kBasisRowBytes + column * 2; }
};

// 2-dim words of a 32-dim group stored transposed as a 4x4 matrix: word 4a + b at 4b + a. Then
// the mma's n-tile j, columns 2t and 2t + 1 (thread t of a quad) hold dims 8t + 2j and
// 8t + 2j + 1 of the group, and a thread's four n-tiles cover dims 8t .. 8t + 7.
__device__ __forceinline__ int transpose_words(int i) {
  const int word = i >> 1;
  return (((word & 3) * 4 + (word >> 2)) << 1) + (i & 1);
}

// Shared-memory basis column of dim d: column group c's 64 columns are [64c, 64c + 64), its 32
// first-half dims then their 32 partners, each 32 words-transposed.
template <int D>
__device__ __forceinline__ int basis_column(int d) {
  const int half = d / Geometry<D>::kHalf, within = d % Geometry<D>::kHalf;
  return (within >> 5) * 64 + half * 32 + transpose_words(within & 31);
}

__host__ __device__ inline int padded_rank(int rank) { return (rank + 31) / 32 * 32; }

// Shared-memory plan of one launch, in bytes from the start of the dynamic allocation.
struct SmemPlan {
  int rank_pad, stages, block_slots;
  unsigned stage_offset, stage_bytes, tables_offset, total;
};

// Divisors of the prologue's page-table lookups (see fast_divide.cuh).
struct Divisors {
  FastDivide chunk, u_page, kv_page, basis_page;
};

template <int D>
SmemPlan plan_smem(int rank, int block_rows, int chunk_size, size_t max_bytes) {
  using G = Geometry<D>;
  SmemPlan p{};
  p.rank_pad = padded_rank(rank);
  p.block_slots = block_rows / chunk_size > 0 ? block_rows / chunk_size : 1;
  // Room for either product's layouts (SmemLayout; the mma.sync ones are the larger), 512-byte
  // aligned for the swizzle.
  auto aligned = [](size_t bytes) {
    return (bytes + kSwizzleAlignment - 1) / kSwizzleAlignment * kSwizzleAlignment;
  };
  const size_t basis = aligned(size_t(p.rank_pad) * SmemLayout<D, false>::kBasisRowBytes);
  const size_t stage = aligned(size_t(G::kTileRows) * padded_row_vectors(p.rank_pad) * 16);
  // Per row: coefficient and key addresses (8 bytes each), token (int32); the token table also
  // holds the compacted slot and chunk lists during the prologue.
  const int rows = p.block_slots * chunk_size;
  const size_t tables =
      size_t(rows) * 16 + size_t(rows > 2 * p.block_slots ? rows : 2 * p.block_slots) * 4;
  p.stage_offset = unsigned(basis);
  p.stage_bytes = unsigned(stage);
  const size_t fixed = basis + tables + kSwizzleAlignment;
  const size_t room = max_bytes > fixed ? max_bytes - fixed : 0;
  p.stages = int(room / stage < kMaxStages ? room / stage : kMaxStages);
  p.tables_offset = unsigned(basis + p.stages * stage);
  p.total = unsigned(p.tables_offset + tables + kSwizzleAlignment);
  return p;
}

// One rank step's mma operands: the A tile (16 rows x 16) and four B tiles (16 x 16 columns).
struct Fragments {
  uint32_t a[4], b[4][4];
};

// The wgmma product over `pairs` pairs of 16-wide rank steps (ranks are padded to 32), as one
// straight-line chain per pair count: a run-time check between steps would make ptxas fence the
// accumulators before every step. Descriptors advance by a step's bytes / 16 (A: 32 bytes within
// a swizzle atom, then the next 32-wide rank block; B: 16 rank rows).
template <typename T, typename Layout, int kPairs = kMaxRankSteps / 2>
__device__ __forceinline__ void wgmma_rank_steps(int pairs, float (&acc)[8][4], uint64_t a_desc,
                                                 uint64_t b_desc) {
  if constexpr (kPairs > 1) {
    if (pairs < kPairs) return wgmma_rank_steps<T, Layout, kPairs - 1>(pairs, acc, a_desc, b_desc);
  }
  wgmma_fence();  // here, not before the dispatch: ptxas wants it in the chain's own block
#pragma unroll
  for (int k = 0; k < 2 * kPairs; ++k)
    wgmma_m64n64k16<T>(acc, a_desc + ((k / 2) * Layout::kCoeffBlockBytes + (k % 2) * 32) / 16,
                       b_desc + k * 2 * Layout::kBasisKCoreBytes / 16);
}

__device__ __forceinline__ void wait_for_stage(int pending) {
  if (pending <= 0) cp_async_wait<0>();
  else if (pending == 1) cp_async_wait<1>();
  else cp_async_wait<2>();
}

// kAllowWgmma: run the product on wgmma where this compilation has it (sm_90a) and the head dim
// allows warpgroup tiles; mma.sync otherwise.
template <typename T, int D, bool kAllowWgmma>
__global__ void __launch_bounds__(kThreads, 2)
    rebuild_resident_kernel(RebuildArgs a, SmemPlan p, Divisors div) {
  using G = Geometry<D>;
  constexpr bool kWgmma = kAllowWgmma && SHADOWKV_HAS_WGMMA && G::kWarpgroupTiles;
  using Layout = SmemLayout<D, kWgmma>;
  extern __shared__ __align__(128) unsigned char dynamic_smem[];
  __shared__ int warp_totals[32];
  // The swizzled stages need 512-byte aligned addresses; the dynamic allocation starts after the
  // static shared memory, so round up (the plan has room for it).
  const uint32_t smem_base =
      (smem_address(dynamic_smem) + kSwizzleAlignment - 1) & ~uint32_t(kSwizzleAlignment - 1);
  unsigned char* smem = dynamic_smem + (smem_base - smem_address(dynamic_smem));
  // Per row: where its coefficients are, where its key goes, its token (= RoPE position).
  const T** row_u = reinterpret_cast<const T**>(smem + p.tables_offset);
  const int block_rows = p.block_slots * a.t.chunk_size;
  T** row_dst = reinterpret_cast<T**>(smem + p.tables_offset + sizeof(T*) * block_rows);
  int* row_token = reinterpret_cast<int*>(row_dst + block_rows);

  const SlotTables& t = a.t;
  const int head = blockIdx.y, b = blockIdx.z, C = t.chunk_size;
  const int32_t* fetch = t.fetch + (int64_t(b) * t.heads + head) * t.slots;
  const int32_t* u_pages = a.u_pages + int64_t(b) * a.u_cols;
  const int32_t* slot_pages = t.slot_pages + int64_t(b) * t.slot_cols;
  const int row_offset = t.row_offset[b];
  const T* u = static_cast<const T*>(a.u);
  T* kv = static_cast<T*>(a.kv);
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
  int slot[kRowsPerThread], token[kRowsPerThread];  // slot[k]: the row's index among the slot rows
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int row = threadIdx.x + k * kThreads;
    int q, i;
    div.chunk.divmod(row, q, i);
    slot[k] = row < num_rows ? slot_list[q] * C + i : 0;
    token[k] = row < num_rows ? chunk_list[q] * C + i : 0;
  }
  __syncthreads();  // slot_list and chunk_list are read; row_token may be overwritten
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int row = threadIdx.x + k * kThreads;
    if (row >= num_rows) continue;
    int u_page, u_row, kv_page, kv_row;
    div.u_page.divmod(token[k], u_page, u_row);
    div.kv_page.divmod(row_offset + slot[k], kv_page, kv_row);
    row_u[row] = u + int64_t(u_pages[u_page]) * a.u_page_stride + int64_t(u_row) * a.u_row_stride;
    row_dst[row] = kv + int64_t(slot_pages[kv_page]) * a.kv_page_stride +
                   head * a.kv_head_stride + int64_t(kv_row) * a.kv_row_stride;
    row_token[row] = token[k];
  }
  // And where each basis row is, parked in the last pipeline stage: its first load comes after
  // the main loop's first barrier, when every warp has copied the basis.
  const T** basis_rows =
      reinterpret_cast<const T**>(smem + p.stage_offset + size_t(p.stages - 1) * p.stage_bytes);
  for (int j = threadIdx.x; j < a.rank; j += kThreads) {
    int page, r;
    div.basis_page.divmod(j, page, r);
    basis_rows[j] = static_cast<const T*>(a.basis) +
                    int64_t(a.basis_pages[int64_t(b) * a.basis_cols + page]) * a.basis_page_stride +
                    head * a.basis_head_stride + int64_t(r) * a.basis_row_stride;
  }
  __syncthreads();

  const int num_tiles = (num_rows + G::kTileRows - 1) / G::kTileRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  // The basis rides in the first tile's cp.async group, in 4-byte words so that the columns can
  // be permuted; rows past the rank are zeros. A warp copies a basis row per instruction.
  for (int row = warp; row < p.rank_pad; row += kWarps) {
    for (int d = 2 * lane; d < D; d += 64) {
      const uint32_t dst = smem_base + Layout::basis(row, basis_column<D>(d));
      if (row < a.rank) cp_async4(dst, basis_rows[row] + d, 4);
      else asm volatile("st.shared.u32 [%0], %1;\n" :: "r"(dst), "r"(0u) : "memory");
    }
  }

  // Coefficient rows of one tile into a stage: warp w copies rows w, w + kWarps, ..., lane i
  // the row's 16-byte vector i, so that a row is one request. Rows past the
  // end are left as they are: an output row depends only on its own coefficient row, and those
  // rows are not stored. Columns past the rank must be zeros (a NaN there would reach every
  // output through the zero basis rows): the copies zero-fill what they do not read.
  const int vecs = p.rank_pad / 8;
  auto stage_address = [&](int stage) {
    return smem_base + p.stage_offset + stage * p.stage_bytes;
  };
  auto load_tile = [&](int tile, int stage) {
    const uint32_t dst = stage_address(stage);
    const int first_row = tile * G::kTileRows;
    const int rows_here = min(G::kTileRows, num_rows - first_row);
    const T* const* sources = row_u + first_row;
    // Lane-constant vector and byte count, so the per-row work is an address and a copy.
    for (int c = lane; c < vecs; c += 32) {
      const int col = c * 8, n = max(0, min(8, a.rank - col));
      if (a.u_aligned) {
        for (int r = warp; r < rows_here; r += kWarps)
          cp_async16(dst + Layout::coeff(r, c, p.rank_pad), sources[r] + col, n * 2);
      } else {  // rows not 16-byte aligned (ranks not a multiple of 8): element copies
        for (int r = warp; r < rows_here; r += kWarps) {
          const unsigned short* from = reinterpret_cast<const unsigned short*>(sources[r] + col);
          uint32_t w[4];
#pragma unroll
          for (int e = 0; e < 4; ++e)
            w[e] = (2 * e < n ? from[2 * e] : 0u) |
                   (2 * e + 1 < n ? uint32_t(from[2 * e + 1]) << 16 : 0u);
          asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n"
                       :: "r"(dst + Layout::coeff(r, c, p.rank_pad)), "r"(w[0]), "r"(w[1]),
                       "r"(w[2]), "r"(w[3]) : "memory");
        }
      }
    }
  };

  const int S = p.stages;
  for (int s = 0; s < S - 1; ++s) {
    if (s < num_tiles) load_tile(s, s);
    cp_async_commit();
  }

  const int col_group = warp / G::kWarpsPerColGroup;
  const int warp_row0 = (warp % G::kWarpsPerColGroup) * 16, warpgroup_row0 = warp_row0 & ~63;
  const int g = lane >> 2, tq = lane & 3;
  // This thread's dims in the first half: col_group*32 + 8tq + 2j + e (see transpose_words).
  const int dim0 = col_group * 32 + 8 * tq;
  float freq[4][2];
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) freq[j][e] = __ldg(a.inv_freq + dim0 + 2 * j + e);

  // This column group's basis columns start at 64 * col_group.
  const uint32_t basis_group = smem_base + Layout::basis(0, 64 * col_group);
  // mma.sync: ldmatrix row addresses of A (rows warp_row0 + lane % 16, k half lane / 16) and of
  // B (k rows lane % 8 + 8 * (lane / 8 % 2), 8-column half lane / 16) at rank step 0.
  const uint32_t a_lane = Layout::coeff(warp_row0 + (lane & 15), lane >> 4, p.rank_pad);
  const uint32_t b_lane = basis_group + Layout::basis(lane & 15, (lane >> 4) * 8);

  // Stages in turn: the tile being multiplied, and the one its next load goes to (S - 1 on).
  int read_stage = 0, write_stage = S - 1;
  for (int tile = 0; tile < num_tiles; ++tile) {
    wait_for_stage(S - 2);
    if constexpr (kWgmma) fence_shared_for_async_proxy();
    __syncthreads();  // this tile's stage visible to all; the previous tile's stage free
    if (tile + S - 1 < num_tiles) load_tile(tile + S - 1, write_stage);
    cp_async_commit();
    const uint32_t stage = stage_address(read_stage);
    read_stage = read_stage + 1 == S ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == S ? 0 : write_stage + 1;

    const int tile_rows = min(G::kTileRows, num_rows - tile * G::kTileRows);
    // Uniform over the warp (mma.sync) or the warpgroup (wgmma): its rows are all padding.
    if ((kWgmma ? warpgroup_row0 : warp_row0) >= tile_rows) continue;

    float acc[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;

    // This warp's rows' positions and destinations, read now so the loads hide behind the product.
    int token[2];
    T* dst[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = tile * G::kTileRows + min(warp_row0 + h * 8 + g, tile_rows - 1);
      token[h] = row_token[row];
      dst[h] = row_dst[row] + dim0;
    }

    if constexpr (kWgmma) {
      // One m64n64k16 per 16-wide rank step.
      const uint64_t a_desc =
          wgmma_descriptor_swizzle64(stage + Layout::coeff(warpgroup_row0, 0, p.rank_pad), 512);
      const uint64_t b_desc = wgmma_descriptor(basis_group, Layout::kBasisKCoreBytes, 128);
      wgmma_rank_steps<T, Layout>(p.rank_pad / 32, acc, a_desc, b_desc);
      wgmma_commit();
      wgmma_wait_all();
    } else {
      // Two 16-wide rank steps per branch so that the second step's fragments load while the
      // first's multiply (ranks are padded to 32). Unrolled, the shared-memory addresses are
      // immediates. (Prefetching a step further ahead was slower: the compiler predicates the
      // loads of every unrolled step, and those issue even when off.)
#pragma unroll
      for (int k = 0; k < kMaxRankSteps; k += 2) {
        if (k * 16 < p.rank_pad) {
          Fragments f[2];
#pragma unroll
          for (int s = 0; s < 2; ++s) {
            ldmatrix_x4(f[s].a, stage + a_lane + (k + s) * 32);
#pragma unroll
            for (int q = 0; q < 4; ++q)
              ldmatrix_x4_trans(f[s].b[q], b_lane + Layout::basis((k + s) * 16, 16 * q));
          }
#pragma unroll
          for (int s = 0; s < 2; ++s)
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              mma_16816<T>(acc[2 * q], f[s].a, f[s].b[q][0], f[s].b[q][1]);
              mma_16816<T>(acc[2 * q + 1], f[s].a, f[s].b[q][2], f[s].b[q][3]);
            }
        }
      }
    }

    // RoPE in registers: acc[j] (first-half dims dim0 + 2j + e) pairs with acc[j + 4] (+ D/2);
    // rows g (h = 0) and g + 8 (h = 1) of the warp's 16.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (warp_row0 + h * 8 + g >= tile_rows) continue;
      const float position = float(token[h]);
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
      *reinterpret_cast<uint4*>(dst[h]) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
      *reinterpret_cast<uint4*>(dst[h] + G::kHalf) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    }
  }
  cp_async_wait<0>();
}

template <typename T, int D>
cudaError_t launch(const RebuildArgs& a, const DeviceLimits& device, cudaStream_t stream) {
  // Two blocks a SM where both fit with two stages each, so that one block's prologue (page-table
  // lookups, basis copy, first loads: a few microseconds of latency) overlaps the other's
  // product; one block with more shared memory otherwise. Rows per block: the fewest that keep
  // the grid within one wave of blocks where it can be (a second, partial wave costs as long as
  // a full one: at batch 8 the old rounding down gave 320 blocks for 264 places), at most
  // kMaxBlockRows so the row tables fit.
  const int64_t sequences_heads = int64_t(a.t.batch) * a.t.heads;
  const int tile = Geometry<D>::kTileRows;
  SmemPlan p{};
  for (int blocks_per_sm = 2; blocks_per_sm >= 1 && p.stages < 2; --blocks_per_sm) {
    const int64_t places = int64_t(device.num_sms) * blocks_per_sm;
    const int64_t columns = places > sequences_heads ? places / sequences_heads : 1;
    const int64_t block_slots = (a.t.slots + columns - 1) / columns;
    int64_t block_rows = (block_slots * a.t.chunk_size + tile - 1) / tile * tile;
    block_rows = block_rows > kMaxBlockRows ? kMaxBlockRows : block_rows;
    p = plan_smem<D>(a.rank, int(block_rows), a.t.chunk_size,
                     blocks_per_sm == 2 ? device.paired_smem : device.block_smem);
  }
  if (p.stages < 2) return cudaErrorInvalidConfiguration;  // rebuild_resident_fits said no
  // Whether wgmma runs is settled in the device code (it exists in sm_90a builds only).
  auto* kernel = a.kernel == RebuildKernel::kMmaSync ? rebuild_resident_kernel<T, D, false>
                                                     : rebuild_resident_kernel<T, D, true>;
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(p.total));
  if (err != cudaSuccess) return err;
  Divisors div;
  div.chunk = FastDivide(a.t.chunk_size);
  div.u_page = FastDivide(a.u_tokens_per_page);
  div.kv_page = FastDivide(a.t.block_size);
  div.basis_page = FastDivide(a.basis_rows_per_page);
  const dim3 grid((a.t.slots + p.block_slots - 1) / p.block_slots, a.t.heads, a.t.batch);
  kernel<<<grid, kThreads, p.total, stream>>>(a, p, div);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_for_dim(const RebuildArgs& a, const DeviceLimits& device, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64: return launch<T, 64>(a, device, stream);
    case 128: return launch<T, 128>(a, device, stream);
    case 256: return launch<T, 256>(a, device, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

bool rebuild_resident_fits(const RebuildArgs& a, DType dtype, const DeviceLimits& device) {
  const size_t max_block_smem = device.block_smem;
  if (dtype == DType::kFloat32 || a.t.chunk_size > kMaxBlockRows ||
      padded_rank(a.rank) > 16 * kMaxRankSteps)
    return false;
  // The largest row tables a launch may use (kMaxBlockRows) must fit beside two stages.
  switch (a.head_dim) {
    case 64: return plan_smem<64>(a.rank, kMaxBlockRows, a.t.chunk_size, max_block_smem).stages >= 2;
    case 128: return plan_smem<128>(a.rank, kMaxBlockRows, a.t.chunk_size, max_block_smem).stages >= 2;
    case 256: return plan_smem<256>(a.rank, kMaxBlockRows, a.t.chunk_size, max_block_smem).stages >= 2;
    default: return false;
  }
}

cudaError_t launch_rebuild_resident(const RebuildArgs& a, DType dtype, const DeviceLimits& device,
                                    cudaStream_t stream) {
  if (dtype == DType::kFloat16) return launch_for_dim<__half>(a, device, stream);
  if (dtype == DType::kBFloat16) return launch_for_dim<__nv_bfloat16>(a, device, stream);
  return cudaErrorInvalidValue;
}

}  // namespace shadowkv

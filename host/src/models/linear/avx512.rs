//! The f32 kernel of [`super::Linear`] for x86-64 CPUs with AVX-512F: `C = A · Wᵀ (+ bias)`
//! with `W` packed once, at load, into panels of [`NR`] output columns.
//!
//! Why Mira has its own: candle's CPU matmul is the gemm crate's, whose AVX2 kernels run at about
//! half of this machine's f32 rate (two 512-bit FMA ports per core: 245 GFLOP/s a core against
//! 130 for AVX2), and whose AVX-512 kernels (its `x86-v4` feature) were slower here because they
//! pack both operands on every call. A linear layer's weights never change, so they are packed
//! once, 64-byte aligned (a vector load that straddles two cache lines costs two: aligning the
//! panels alone took the kernel from 150 to 170-190 GFLOP/s a core); the activations are copied
//! per block into row tiles, as every blocked matrix multiply does.
//!
//! The register tile is [`MR`] rows x [`NR`] columns: 24 accumulators, four weight vectors and
//! a broadcast, 29 of the 32 zmm registers (12 x 32 and 8 x 48 measured the same or slower).
//! Loops, outermost first: blocks of [`MC`] rows by [`KC`] of the inner dimension, copied into
//! row tiles (kept in L2), panels (a panel's slice stays in L2 across the row tiles), row tiles
//! (each in L1 while it runs).

use std::arch::x86_64::*;

pub(crate) use super::Epilogue;
use super::{Dest, Out, split_panels};

/// Vectors of 16 columns per panel.
const NV: usize = 4;
/// Output columns per packed panel.
pub const NR: usize = 16 * NV;
/// Rows per register tile.
const MR: usize = 6;
/// The longest inner-dimension block (the inner dimension is cut into equal blocks no longer):
/// a tile of rows (`MR x KC`, 24 KB) stays in L1, a panel's slice (`KC x NR`, 256 KB) in L2.
/// Shorter blocks cost more in loads and stores of the output than they save.
const KC: usize = 1024;
/// Rows per block of the activations (a multiple of `MR`): a block of `MC x KC` is 768 KB.
const MC: usize = 192;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// 64 bytes, aligned: the unit of [`Panels`], so that no weight vector straddles two cache
/// lines (a split load costs two).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A weight matrix in the kernel's panels, 64-byte aligned.
pub struct Panels(Vec<Line>);

impl Panels {
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is 16 f32 with no padding (repr(C), size 64).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * 16) }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.0.len() * 16) }
    }
}

/// `w` (`n x k`, row-major, as a linear layer's weight) packed into `ceil(n / NR)` panels of
/// `k x NR`, columns past `n` zero.
pub fn pack(w: &[f32], n: usize, k: usize) -> Panels {
    let panels = n.div_ceil(NR);
    let mut packed = Panels(vec![Line([0.0; 16]); panels * k * NR / 16]);
    let out = packed.as_mut_slice();
    for p in 0..panels {
        let panel = &mut out[p * k * NR..(p + 1) * k * NR];
        for j in 0..NR.min(n - p * NR) {
            let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
            for (kk, v) in row.iter().enumerate() {
                panel[kk * NR + j] = *v;
            }
        }
    }
    packed
}

/// `w` given as its transpose (`k x n`, row-major: the values of an attention, keys by
/// position) packed as [`pack`] packs `n x k`.
pub fn pack_transposed(wt: &[f32], n: usize, k: usize) -> Panels {
    let panels = n.div_ceil(NR);
    let mut packed = Panels(vec![Line([0.0; 16]); panels * k * NR / 16]);
    let out = packed.as_mut_slice();
    for p in 0..panels {
        let cols = NR.min(n - p * NR);
        let panel = &mut out[p * k * NR..(p + 1) * k * NR];
        for kk in 0..k {
            panel[kk * NR..kk * NR + cols].copy_from_slice(&wt[kk * n + p * NR..][..cols]);
        }
    }
    packed
}

/// `c (m x n) = epilogue(a (m x k) · wᵀ + bias)`, `w` from [`pack`]; work split by panels over
/// `threads` of rayon's pool. Every element of `c` is written (it may start uninitialised).
///
/// # Safety
/// The CPU must have AVX-512F ([`available`]).
pub unsafe fn matmul(
    a: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    c: &mut [std::mem::MaybeUninit<f32>],
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue,
    threads: usize,
) {
    assert!(c.len() >= m * epilogue.outputs(n, NR));
    let parts = [(Out(c.as_mut_ptr().cast()), epilogue.outputs(n, NR))];
    // SAFETY: forwarded; `c` holds the m rows of the one part.
    unsafe { matmul_into(a, packed, bias, Dest(&parts), (m, n, k), epilogue, threads) }
}

/// [`matmul`] into `dest`'s parts (`m` rows each; together the product's `n` columns, or
/// `n / 2` of them for [`Epilogue::SwiGlu`] of an interleaved `n`).
///
/// # Safety
/// As [`matmul`]; each of `dest`'s buffers must hold `m` rows of its width.
pub(crate) unsafe fn matmul_into(
    a: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    dest: Dest,
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue,
    threads: usize,
) {
    assert!(a.len() >= m * k && packed.len() >= n.div_ceil(NR) * k * NR);
    assert!(bias.is_none_or(|b| b.len() >= n));
    assert!(
        dest.width() <= epilogue.outputs(n, NR),
        "the destination is wider than the product"
    );
    assert!(k > 0, "an empty inner dimension writes nothing");
    split_panels(n.div_ceil(NR), threads, |panels| {
        // SAFETY: AVX-512F is checked by the caller; bounds are asserted above, and each thread
        // writes only the columns of its own panels.
        unsafe { block(a, packed, bias, dest, (m, n, k), epilogue, panels) };
    });
}

thread_local! {
    /// Each worker's copy of the current block of activations, in row tiles (see [`pack_rows`]).
    static PACKED_ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies rows `m0..m0 + mc`, inner positions `k0..k0 + kc`, of `a` (row stride `lda`) into
/// tiles of [`MR`] rows: tile `t`, position `kk`, row `r` at `(t * kc + kk) * MR + r`, rows
/// past `mc` zero. The kernel then reads its broadcasts in order, where rows a fixed stride
/// apart (a multiple of 4 KB for widths like 3072) would fight over the same L1 sets.
fn pack_rows(a: &[f32], lda: usize, (m0, mc): (usize, usize), (k0, kc): (usize, usize), out: &mut Vec<f32>) {
    let tiles = mc.div_ceil(MR);
    out.resize(tiles * kc * MR, 0.0);
    for t in 0..tiles {
        let tile = &mut out[t * kc * MR..(t + 1) * kc * MR];
        let rows = MR.min(mc - t * MR);
        let src: [&[f32]; MR] = std::array::from_fn(|r| {
            let row = m0 + t * MR + r.min(rows - 1);
            &a[row * lda + k0..][..kc]
        });
        // Position by position, so that the writes are in order; the rows past `mc` (read as
        // the last row, to stay in bounds) are zeroed below.
        for (kk, out) in tile.chunks_exact_mut(MR).enumerate() {
            for r in 0..MR {
                out[r] = src[r][kk];
            }
        }
        if rows < MR {
            for out in tile.chunks_exact_mut(MR) {
                out[rows..].fill(0.0);
            }
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn block(
    a: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    dest: Dest,
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue,
    panels: std::ops::Range<usize>,
) {
    // A gated product takes the whole inner dimension in one block (its outputs are not the
    // product's, so they cannot hold partial sums); its row blocks are shorter to stay in L2.
    let (kb, mc_max) = if epilogue == Epilogue::SwiGlu {
        (k, (MC * KC / k).next_multiple_of(MR).clamp(MR, MC))
    } else {
        (k.div_ceil(k.div_ceil(KC)), MC)
    };
    let per_panel = epilogue.outputs_per_panel(NR);
    PACKED_ROWS.with_borrow_mut(|rows| {
        let w = packed.as_ptr();
        // Blocks of equal size (a multiple of the tile), no longer than `mc_max`: a short last
        // block would stream every panel again for a few rows.
        let block_rows = m.div_ceil(m.div_ceil(mc_max)).next_multiple_of(MR);
        for m0 in (0..m).step_by(block_rows) {
            let mc = block_rows.min(m - m0);
            for k0 in (0..k).step_by(kb) {
                let kc = kb.min(k - k0);
                pack_rows(a, k, (m0, mc), (k0, kc), rows);
                let first = k0 == 0;
                for p in panels.clone() {
                    let (c, ldc, left) = dest.at(p * per_panel);
                    let bias = if first {
                        bias.map(|b| b[p * NR..].as_ptr())
                    } else {
                        None
                    };
                    let tile = Tile {
                        kc,
                        ldc,
                        cols: NR.min(n - p * NR),
                        out_cols: per_panel.min(left).min(NR.min(n - p * NR)),
                        first,
                        bias,
                        epilogue: if k0 + kc == k { epilogue } else { Epilogue::None },
                    };
                    // SAFETY: offsets stay inside the asserted extents and the packed rows.
                    unsafe {
                        let b = w.add(p * k * NR + k0 * NR);
                        for (t, i) in (0..mc).step_by(MR).enumerate() {
                            let ap = rows.as_ptr().add(t * kc * MR);
                            let cp = c.add((m0 + i) * ldc);
                            tile_dispatch(MR.min(mc - i), &tile, ap, b, cp);
                        }
                    }
                }
            }
        }
    });
}

/// What a register tile needs besides its pointers.
struct Tile {
    kc: usize,
    ldc: usize,
    /// Valid columns of the panel's product (1..=NR).
    cols: usize,
    /// Outputs the panel writes at `c` (`cols`, or half of the panel for a gated product).
    out_cols: usize,
    /// The first block of the inner dimension: start from the bias (or zero), not from C.
    first: bool,
    bias: Option<*const f32>,
    /// Applied on this store (the last block's) only.
    epilogue: Epilogue,
}

#[target_feature(enable = "avx512f")]
unsafe fn tile_dispatch(rows: usize, t: &Tile, a: *const f32, b: *const f32, c: *mut f32) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match rows {
            14 => tile::<14>(t, a, b, c),
            13 => tile::<13>(t, a, b, c),
            12 => tile::<12>(t, a, b, c),
            11 => tile::<11>(t, a, b, c),
            10 => tile::<10>(t, a, b, c),
            9 => tile::<9>(t, a, b, c),
            8 => tile::<8>(t, a, b, c),
            7 => tile::<7>(t, a, b, c),
            6 => tile::<6>(t, a, b, c),
            5 => tile::<5>(t, a, b, c),
            4 => tile::<4>(t, a, b, c),
            3 => tile::<3>(t, a, b, c),
            2 => tile::<2>(t, a, b, c),
            _ => tile::<1>(t, a, b, c),
        }
    }
}

/// Masks of the panel's vectors for `cols` valid columns.
fn masks(cols: usize) -> [__mmask16; NV] {
    std::array::from_fn(|v| {
        let n = cols.saturating_sub(16 * v);
        if n >= 16 { 0xFFFF } else { ((1u32 << n) - 1) as u16 }
    })
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize>(t: &Tile, a: *const f32, b: *const f32, c: *mut f32) {
    let (mask, out) = (masks(t.cols), masks(t.out_cols));
    // SAFETY: the caller's pointers cover a tile of packed rows (a), `kc x NR` (b) and R rows of
    // `out_cols` (c); masked loads and stores touch only valid columns.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        if t.first {
            if let Some(bias) = t.bias {
                let init: [__m512; NV] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(mask[v], bias.add(16 * v)));
                for row in acc.iter_mut() {
                    *row = init;
                }
            }
        } else {
            // (Never gated: a gated product has one block of the inner dimension.)
            for (r, row) in acc.iter_mut().enumerate() {
                let cr = c.add(r * t.ldc);
                *row = std::array::from_fn(|v| _mm512_maskz_loadu_ps(out[v], cr.add(16 * v)));
            }
        }
        for kk in 0..t.kc {
            let w: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(kk * NR + 16 * v)));
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(kk * MR + r));
                for v in 0..NV {
                    row[v] = _mm512_fmadd_ps(x, w[v], row[v]);
                }
            }
        }
        let stored = apply_epilogue(t.epilogue, &mut acc);
        for (r, row) in acc.iter().enumerate() {
            let cr = c.add(r * t.ldc);
            for v in 0..stored {
                _mm512_mask_storeu_ps(cr.add(16 * v), out[v], row[v]);
            }
        }
    }
}

/// `e^x` for 16 lanes, within 2 ulp of the platform's `expf` over the range where the result
/// is a normal float: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by a degree-6 polynomial
/// (Cephes' `expf` coefficients), `2^n` by `vscalefps`. Inputs are clamped to `[-87.3, 88.7]`,
/// so the result is finite and positive.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn exp(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3)), _mm512_set1_ps(88.7));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        x,
        _mm512_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
    _mm512_scalef_ps(p, n)
}

/// `Σ x²`, 16 lanes at a time (the RMS norms' sum).
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn sum_of_squares(x: &[f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` holds 16 floats.
        let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    _mm512_reduce_add_ps(acc) + chunks.remainder().iter().map(|v| v * v).sum::<f32>()
}

/// `row[..valid] = softmax(scale x row[..valid])`, `row[valid..] = 0` (masked positions).
///
/// # Safety
/// The CPU must have AVX-512F ([`available`]).
#[target_feature(enable = "avx512f")]
pub unsafe fn softmax_row(row: &mut [f32], valid: usize, scale: f32) {
    let (live, masked) = row.split_at_mut(valid.min(row.len()));
    masked.fill(0.0);
    if live.is_empty() {
        return;
    }
    let mut lanes = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut chunks = live.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` holds 16 floats.
        lanes = _mm512_max_ps(lanes, unsafe { _mm512_loadu_ps(c.as_ptr()) });
    }
    let max = chunks
        .remainder()
        .iter()
        .fold(_mm512_reduce_max_ps(lanes), |m, v| m.max(*v))
        * scale;
    let (s, m) = (_mm512_set1_ps(scale), _mm512_set1_ps(max));
    let mut sum = _mm512_setzero_ps();
    let mut chunks = live.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` holds 16 floats.
        unsafe {
            let e = exp(_mm512_fmsub_ps(_mm512_loadu_ps(c.as_ptr()), s, m));
            sum = _mm512_add_ps(sum, e);
            _mm512_storeu_ps(c.as_mut_ptr(), e);
        }
    }
    let tail = chunks.into_remainder();
    let mask = ((1u32 << tail.len()) - 1) as u16;
    // SAFETY: the masked lanes cover the tail only.
    unsafe {
        let e = exp(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mask, tail.as_ptr()), s, m));
        let e = _mm512_maskz_mov_ps(mask, e);
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(tail.as_mut_ptr(), mask, e);
    }
    let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
    let mut chunks = live.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` holds 16 floats.
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), _mm512_mul_ps(_mm512_loadu_ps(c.as_ptr()), inv)) };
    }
    let inv = _mm512_cvtss_f32(inv);
    for v in chunks.into_remainder() {
        *v *= inv;
    }
}

/// Applies `epilogue` to a register tile's rows of `V` vectors and returns how many vectors of
/// each row to store: all of them, or the first half for [`Epilogue::SwiGlu`] (a panel's first
/// half gates, its second the same features' up projections; the gated features go in the
/// first half's vectors). Shared by the f32 and int8 kernels.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn apply_epilogue<const V: usize>(epilogue: Epilogue, acc: &mut [[__m512; V]]) -> usize {
    match epilogue {
        Epilogue::None => V,
        Epilogue::QuickGelu => {
            for row in acc.iter_mut() {
                for v in row.iter_mut() {
                    *v = quick_gelu(*v);
                }
            }
            V
        }
        Epilogue::SwiGlu => {
            for row in acc.iter_mut() {
                for v in 0..V / 2 {
                    row[v] = _mm512_mul_ps(silu(row[v]), row[v + V / 2]);
                }
            }
            V / 2
        }
    }
}

/// `x * sigmoid(1.702 x) = x / (1 + e^(-1.702 x))`, as candle's and PyTorch's quick GELU.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn quick_gelu(x: __m512) -> __m512 {
    let e = exp(_mm512_mul_ps(x, _mm512_set1_ps(-1.702)));
    _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
}

/// `x * sigmoid(x) = x / (1 + e^(-x))`, as candle's `silu` (SwiGLU's gate).
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn silu(x: __m512) -> __m512 {
    let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_exp_is_within_two_ulp_of_expf() {
        if !available() {
            return;
        }
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let xs: [f32; 16] = std::array::from_fn(|i| x + i as f32 * 0.000_37);
            let mut out = [0f32; 16];
            // SAFETY: AVX-512F checked above; the arrays hold 16 lanes.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp(_mm512_loadu_ps(xs.as_ptr()))) };
            for (x, got) in xs.iter().zip(out) {
                worst = worst.max(ulps(got, x.exp()));
            }
            x += 0.0061;
        }
        assert!(worst <= 2, "worst {worst} ulp");
        // Far outside the range: finite, and as small or as large as a float gets near it.
        let mut out = [0f32; 16];
        let xs = [
            -1e30f32, -200.0, 200.0, 1e30, 0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 10.0, -10.0, 88.0, -87.0, 3.0, -3.0,
        ];
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp(_mm512_loadu_ps(xs.as_ptr()))) };
        assert!(out.iter().all(|v| v.is_finite() && *v > 0.0));
        assert!(out[0] < 1e-37 && out[3] > 1e38 && out[4] == 1.0 && out[5] == 1.0);
    }
}

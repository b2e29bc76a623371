//! The int8 kernel of [`super::Linear`] (`dtype = "q8"`) for x86-64 CPUs with AVX-512 VNNI:
//! weights in blocks of [`BLOCK`] along the inner dimension, each block's 32 values as int8
//! with one f32 scale (absmax / 127, as GGML's Q8_0), packed once at load; the activations
//! quantized the same way on every call. `vpdpbusd` multiplies 64 unsigned by signed bytes
//! into 16 int32 sums in one instruction, four times the multiply-adds of an f32 FMA.
//!
//! `vpdpbusd` takes one operand unsigned: activations are stored as `q + 128` (0..=255) and each
//! block's sum corrected by `128 x sum(w)`, precomputed per output column and block: a block's
//! int32 sums start from `-128 x sum(w)` rather than zero, so the correction costs no
//! instruction of its own.
//!
//! Layout of a panel of [`NR`] output columns: per block, per group of 4 inner positions, per
//! vector of 16 columns, 64 bytes (column-major within the vector: a column's 4 bytes
//! together, as `vpdpbusd` reads them). Loops: blocks of [`MC`] rows (their bytes kept in L2),
//! panels, tiles of [`MR`] rows over the whole inner dimension (int32 sums per block, f32 sums
//! across blocks).
//!
//! Where the CPU has AMX, [`matmul`] hands the same panels to [`super::amx`], whose tiles read
//! this layout as it is (a block's 8 groups for 16 columns are one 8 x 64-byte weight tile).

use rayon::prelude::*;

use super::avx512::apply_epilogue;
use super::{Dest, Epilogue, split_panels};
use std::arch::x86_64::*;

/// Inner positions per quantization block.
pub const BLOCK: usize = 32;
/// Vectors of 16 output columns per panel.
pub(super) const NV: usize = 2;
/// Output columns per panel.
pub const NR: usize = 16 * NV;
/// Rows per register tile: `2 x MR x NV` accumulators (int32 and f32); 4 x 32 measured faster
/// than 6 x 32, 5 x 32, 4 x 48 and 3 x 64 (2.4x the f32 kernel against 1.8-2.3x).
const MR: usize = 4;
/// Rows per block of the quantized activations.
pub(super) const MC: usize = 192;
/// Groups of 4 positions per block.
pub(super) const GROUPS: usize = BLOCK / 4;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Line([i8; 64]);

/// A weight matrix quantized and packed for the kernel.
pub struct Q8Panels {
    pub(super) n: usize,
    pub(super) k: usize,
    /// `panels x blocks x GROUPS x NV` lines.
    pub(super) weights: Vec<Line>,
    /// Per panel and block, `NR` scales.
    pub(super) scales: Vec<f32>,
    /// Per panel and block, `NR` corrections: `-128 x` the sum of the column's block.
    offsets: Vec<i32>,
    /// Whether products run on the AMX tiles ([`super::amx`]) rather than VNNI.
    amx: bool,
}

impl Q8Panels {
    /// Quantizes `w` (`n x k`, row-major, `k` a multiple of [`BLOCK`]), panels in parallel on
    /// rayon's pool (loading the 8B quantizes 7.6 billion weights).
    pub fn new(w: &[f32], n: usize, k: usize) -> Q8Panels {
        assert!(k.is_multiple_of(BLOCK) && w.len() == n * k);
        let (panels, blocks) = (n.div_ceil(NR), k / BLOCK);
        let mut weights = vec![Line([0; 64]); panels * blocks * GROUPS * NV];
        let mut scales = vec![0f32; panels * blocks * NR];
        let mut offsets = vec![0i32; panels * blocks * NR];
        if panels > 0 {
            weights
                .par_chunks_mut(blocks * GROUPS * NV)
                .zip(scales.par_chunks_mut(blocks * NR))
                .zip(offsets.par_chunks_mut(blocks * NR))
                .enumerate()
                .for_each(|(p, ((weights, scales), offsets))| {
                    let rows = &w[p * NR * k..(n * k).min((p + 1) * NR * k)];
                    pack_panel(rows, k, weights, scales, offsets);
                });
        }
        Q8Panels {
            n,
            k,
            weights,
            scales,
            offsets,
            amx: super::amx::available(),
        }
    }

    pub fn in_features(&self) -> usize {
        self.k
    }

    /// Whether products run on AMX (where the CPU has it) rather than VNNI.
    pub fn amx(&self) -> bool {
        self.amx
    }

    /// Runs this matrix's products on the VNNI kernel even where AMX is there (to compare the
    /// two: they give the same sums).
    pub fn use_vnni(&mut self) {
        self.amx = false;
    }
}

/// One panel: `rows` (up to [`NR`] rows of `k`) into its lines, scales and corrections.
fn pack_panel(rows: &[f32], k: usize, weights: &mut [Line], scales: &mut [f32], offsets: &mut [i32]) {
    for (c, row) in rows.chunks_exact(k).enumerate() {
        let (v, lane) = (c / 16, c % 16);
        for (b, values) in row.chunks_exact(BLOCK).enumerate() {
            let (scale, q) = quantize_block(values);
            scales[b * NR + c] = scale;
            offsets[b * NR + c] = -128 * q.iter().map(|x| *x as i32).sum::<i32>();
            for (g, four) in q.chunks_exact(4).enumerate() {
                weights[(b * GROUPS + g) * NV + v].0[lane * 4..lane * 4 + 4].copy_from_slice(four);
            }
        }
    }
}

/// A block's scale and int8 values: `absmax / 127`, values rounded to nearest.
fn quantize_block(values: &[f32]) -> (f32, [i8; BLOCK]) {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = amax / 127.0;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let mut q = [0i8; BLOCK];
    for (q, v) in q.iter_mut().zip(values) {
        *q = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    (scale, q)
}

/// Activations quantized for the kernels: `rows x k` bytes and `rows x k / BLOCK` scales, the
/// values `q + BIAS` (128 for `vpdpbusd`'s unsigned operand, 0 for AMX's signed one); rows
/// past the input's are zero.
pub(super) struct Quantized {
    pub(super) bytes: Vec<u8>,
    pub(super) scales: Vec<f32>,
}

/// Quantizes `m` rows of `a` (`m x k`) into `rows >= m` rows.
#[target_feature(enable = "avx512f,avx512bw")]
fn quantize_rows<const BIAS: i32>(a: &[f32], m: usize, rows: usize, k: usize) -> Quantized {
    let blocks = k / BLOCK;
    let mut bytes = vec![0u8; rows * k];
    let mut scales = vec![0f32; rows * blocks];
    for (i, (x, q)) in a[..m * k]
        .chunks_exact(BLOCK)
        .zip(bytes.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        // SAFETY: `x` holds 32 floats and `q` 32 bytes.
        unsafe {
            let (lo, hi) = (_mm512_loadu_ps(x.as_ptr()), _mm512_loadu_ps(x.as_ptr().add(16)));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
            let scale = amax / 127.0;
            let inv = _mm512_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
            let bias = _mm512_set1_epi32(BIAS);
            let round = |v: __m512| {
                _mm512_add_epi32(
                    _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
                        v, inv,
                    )),
                    bias,
                )
            };
            _mm_storeu_si128(q.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(round(lo)));
            _mm_storeu_si128(q.as_mut_ptr().add(16).cast(), _mm512_cvtepi32_epi8(round(hi)));
            scales[i] = scale;
        }
    }
    Quantized { bytes, scales }
}

/// `dest = epilogue(quantized(a) (m x k) · quantized(w)ᵀ + bias)`: every element of `dest`'s
/// parts (`m` rows each; the product's columns, or half of them for [`Epilogue::SwiGlu`] of
/// interleaved weights) written.
///
/// # Safety
/// The CPU must pass [`available`]; each of `dest`'s buffers must hold `m` rows of its width.
pub(crate) unsafe fn matmul(
    a: &[f32],
    w: &Q8Panels,
    bias: Option<&[f32]>,
    dest: Dest,
    m: usize,
    epilogue: Epilogue,
    threads: usize,
) {
    let (n, k) = (w.n, w.k);
    assert!(a.len() >= m * k && bias.is_none_or(|b| b.len() >= n));
    assert!(
        dest.width() <= epilogue.outputs(n, NR),
        "the destination is wider than the product"
    );
    // AMX takes signed activations in whole tiles of rows; VNNI unsigned ones (`q + 128`).
    let amx = w.amx;
    // SAFETY: the caller checked the CPU (`amx` is set only where `amx::available()` held).
    let q = unsafe {
        if amx {
            quantize_rows::<0>(a, m, m.next_multiple_of(super::amx::ROWS), k)
        } else {
            quantize_rows::<128>(a, m, m, k)
        }
    };
    let q = &q;
    split_panels(n.div_ceil(NR), threads, |panels| {
        // SAFETY: the CPU (and for AMX the tiles' permission) is checked; each thread writes
        // the columns of its own panels.
        unsafe {
            if amx {
                super::amx::block(q, w, bias, dest, m, epilogue, panels)
            } else {
                block(q, w, bias, dest, m, epilogue, panels)
            }
        };
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block(
    q: &Quantized,
    w: &Q8Panels,
    bias: Option<&[f32]>,
    dest: Dest,
    m: usize,
    epilogue: Epilogue,
    panels: std::ops::Range<usize>,
) {
    let (n, k) = (w.n, w.k);
    let blocks = k / BLOCK;
    let per_panel = epilogue.outputs_per_panel(NR);
    // Blocks of equal size (a multiple of the tile), no longer than MC: a short last block
    // would stream every panel again for a few rows.
    let block_rows = m.div_ceil(m.div_ceil(MC)).next_multiple_of(MR);
    for m0 in (0..m).step_by(block_rows) {
        let mc = block_rows.min(m - m0);
        for p in panels.clone() {
            let cols = NR.min(n - p * NR);
            let (c, ldc, left) = dest.at(p * per_panel);
            let tile = Tile {
                blocks,
                k,
                ldc,
                cols,
                out_cols: per_panel.min(left).min(cols),
                epilogue,
                weights: w.weights[p * blocks * GROUPS * NV..].as_ptr().cast(),
                scales: w.scales[p * blocks * NR..].as_ptr(),
                offsets: w.offsets[p * blocks * NR..].as_ptr(),
                bias: bias.map(|b| b[p * NR..].as_ptr()),
            };
            for i in (0..mc).step_by(MR) {
                let row = m0 + i;
                // SAFETY: rows `row..row + rows` exist in `q` and `dest`; the panel's data is
                // `blocks` blocks long.
                unsafe {
                    let x = q.bytes.as_ptr().add(row * k);
                    let xs = q.scales.as_ptr().add(row * blocks);
                    let cp = c.add(row * ldc);
                    match MR.min(mc - i) {
                        4 => tile_rows::<4>(&tile, x, xs, cp),
                        3 => tile_rows::<3>(&tile, x, xs, cp),
                        2 => tile_rows::<2>(&tile, x, xs, cp),
                        _ => tile_rows::<1>(&tile, x, xs, cp),
                    }
                }
            }
        }
    }
}

struct Tile {
    blocks: usize,
    k: usize,
    ldc: usize,
    /// Valid columns of the panel's product.
    cols: usize,
    /// Outputs the panel writes (`cols`, or half the panel for a gated product).
    out_cols: usize,
    epilogue: Epilogue,
    weights: *const i8,
    scales: *const f32,
    offsets: *const i32,
    bias: Option<*const f32>,
}

pub(super) fn masks(cols: usize) -> [__mmask16; NV] {
    std::array::from_fn(|v| {
        let n = cols.saturating_sub(16 * v);
        if n >= 16 { 0xFFFF } else { ((1u32 << n) - 1) as u16 }
    })
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_rows<const R: usize>(t: &Tile, x: *const u8, xs: *const f32, c: *mut f32) {
    let (mask, out) = (masks(t.cols), masks(t.out_cols));
    // SAFETY: pointers as described by the caller; loads of the panel are whole lines.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        if let Some(bias) = t.bias {
            let init: [__m512; NV] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(mask[v], bias.add(16 * v)));
            acc = [init; R];
        }
        for b in 0..t.blocks {
            let offset: [__m512i; NV] =
                std::array::from_fn(|v| _mm512_loadu_si512(t.offsets.add(b * NR + 16 * v).cast()));
            let mut sums = [offset; R];
            let wb = t.weights.add(b * GROUPS * NV * 64);
            for g in 0..GROUPS {
                let w: [__m512i; NV] = std::array::from_fn(|v| _mm512_load_si512(wb.add((g * NV + v) * 64).cast()));
                for (r, s) in sums.iter_mut().enumerate() {
                    let four = (x.add(r * t.k + b * BLOCK + g * 4) as *const i32).read_unaligned();
                    let xv = _mm512_set1_epi32(four);
                    for v in 0..NV {
                        s[v] = _mm512_dpbusd_epi32(s[v], xv, w[v]);
                    }
                }
            }
            let scale: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(t.scales.add(b * NR + 16 * v)));
            for r in 0..R {
                let xscale = _mm512_set1_ps(*xs.add(r * t.blocks + b));
                for v in 0..NV {
                    let exact = _mm512_cvtepi32_ps(sums[r][v]);
                    acc[r][v] = _mm512_fmadd_ps(exact, _mm512_mul_ps(scale[v], xscale), acc[r][v]);
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

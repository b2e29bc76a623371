//! The int8 kernel of [`super::q8`] on Intel AMX (Sapphire Rapids and later): the same weights
//! (GGML Q8_0 blocks of 32, packed once as [`Q8Panels`]) and the same quantization of the
//! activations, multiplied by the tile unit. `tdpbssd` multiplies a 16 x 32 tile of int8
//! activations by a 32 x 16 tile of int8 weights into 16 x 16 int32 sums, 8192 multiply-adds
//! in one instruction (128 `vpdpbusd`); both operands signed, so no correction of the sums.
//!
//! The tile unit leaves the per-block scaling to AVX-512: each block's int32 sums go through
//! memory (`tilestored`, in L1) into f32 accumulators held in registers, 16 rows x 16 columns
//! at a time. The panel layout of [`Q8Panels`] is already the tile's: a block's 8 groups of 4
//! inner positions for 16 columns are 8 rows of 64 bytes, 128 bytes apart.
//!
//! Linux gives a process the tile registers' state only on request (`arch_prctl
//! (ARCH_REQ_XCOMP_PERM)`); [`available`] asks once. Each worker thread loads the tile
//! configuration at the start of its share of a product and releases the tiles at its end.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::avx512::apply_epilogue;
use super::q8::{BLOCK, GROUPS, Line, MC, NR, NV, Q8Panels, Quantized, masks};
use super::{Dest, Epilogue};

/// Rows of a tile (and of the activations' padding).
pub(super) const ROWS: usize = 16;
/// Bytes from one group's 64-byte line of a panel to the next group's (the B tile's stride).
const GROUP_STRIDE: usize = NV * std::mem::size_of::<Line>();

/// Whether this CPU and OS run the kernel (asks Linux for the tile state the first time).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
        let leaf = __cpuid_count(7, 0);
        let amx = leaf.edx & (1 << 24) != 0 && leaf.edx & (1 << 25) != 0;
        amx && super::q8::available() && request_tiles()
    })
}

#[cfg(target_os = "linux")]
fn request_tiles() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes which state the kernel saves.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request_tiles() -> bool {
    false
}

/// The tile configuration (palette 1): tmm0 and tmm3 the int32 sums (16 rows of 64 bytes),
/// tmm1 and tmm4 the activations (16 rows of 32 bytes), tmm2 and tmm5 the weights (8 rows of 64
/// bytes); two blocks in flight.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut set = |tile: usize, rows: u8, bytes: u16| {
            c[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&bytes.to_le_bytes());
            c[48 + tile] = rows;
        };
        for (sums, acts, weights) in [(0, 1, 2), (3, 4, 5)] {
            set(sums, ROWS as u8, 64);
            set(acts, ROWS as u8, BLOCK as u16);
            set(weights, GROUPS as u8, 64);
        }
        TileConfig(c)
    }
}

/// Two blocks' int32 sums, 16 rows x 16 columns each.
#[repr(C, align(64))]
struct Sums([[[i32; 16]; ROWS]; 2]);

/// One worker's share of [`super::q8::matmul`] on the tiles: `panels` of `w` for all `m` rows
/// of `q` (quantized with bias 0, rows padded to a multiple of [`ROWS`]).
///
/// # Safety
/// [`available`] must hold; each of `dest`'s buffers must hold `m` rows of its width, and no
/// other thread writes these panels' columns.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn block(
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
    let config = TileConfig::new();
    let mut sums = Sums([[[0; 16]; ROWS]; 2]);
    // SAFETY: the configuration is valid for palette 1; tiles are released below.
    unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
    let block_rows = m.div_ceil(m.div_ceil(MC)).next_multiple_of(ROWS);
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
                bias: bias.map(|b| b[p * NR..].as_ptr()),
            };
            for i in (0..mc).step_by(ROWS) {
                let row = m0 + i;
                // SAFETY: rows `row..row + 16` exist in `q` (padded) and the first
                // `min(16, m - row)` in `dest`; the panel's data is `blocks` blocks long.
                unsafe {
                    tile_rows(
                        &tile,
                        q.bytes.as_ptr().add(row * k),
                        q.scales.as_ptr().add(row * blocks),
                        c.add(row * ldc),
                        ROWS.min(mc - i),
                        &mut sums,
                    )
                };
            }
        }
    }
    // SAFETY: the tiles were configured above.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

struct Tile {
    blocks: usize,
    k: usize,
    ldc: usize,
    cols: usize,
    out_cols: usize,
    epilogue: Epilogue,
    weights: *const i8,
    scales: *const f32,
    bias: Option<*const f32>,
}

/// 16 rows (the first `rows` stored) of one panel over the whole inner dimension: per vector of
/// 16 columns, the blocks two at a time through the tiles, each block's sums scaled into f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn tile_rows(t: &Tile, x: *const u8, xs: *const f32, c: *mut f32, rows: usize, sums: &mut Sums) {
    let (mask, out) = (masks(t.cols), masks(t.out_cols));
    let mut result = [[_mm512_setzero_ps(); NV]; ROWS];
    for v in 0..NV {
        // SAFETY: pointers as the caller describes; the tiles are configured.
        unsafe {
            let init = match t.bias {
                Some(b) => _mm512_maskz_loadu_ps(mask[v], b.add(16 * v)),
                None => _mm512_setzero_ps(),
            };
            let mut acc = [init; ROWS];
            let weights = t.weights.add(v * 64);
            let mut b = 0;
            while b + 2 <= t.blocks {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm3",
                    "tileloadd tmm1, [{x0} + {lda}*1]",
                    "tileloadd tmm2, [{w0} + {ldb}*1]",
                    "tileloadd tmm4, [{x1} + {lda}*1]",
                    "tileloadd tmm5, [{w1} + {ldb}*1]",
                    "tdpbssd tmm0, tmm1, tmm2",
                    "tdpbssd tmm3, tmm4, tmm5",
                    "tilestored [{s0} + {lds}*1], tmm0",
                    "tilestored [{s1} + {lds}*1], tmm3",
                    x0 = in(reg) x.add(b * BLOCK),
                    x1 = in(reg) x.add((b + 1) * BLOCK),
                    w0 = in(reg) weights.add(b * GROUPS * GROUP_STRIDE),
                    w1 = in(reg) weights.add((b + 1) * GROUPS * GROUP_STRIDE),
                    s0 = in(reg) sums.0[0].as_mut_ptr(),
                    s1 = in(reg) sums.0[1].as_mut_ptr(),
                    lda = in(reg) t.k,
                    ldb = in(reg) GROUP_STRIDE,
                    lds = in(reg) 64usize,
                    options(nostack),
                );
                scale(&mut acc, &sums.0[0], t, xs, b, v);
                scale(&mut acc, &sums.0[1], t, xs, b + 1, v);
                b += 2;
            }
            if b < t.blocks {
                asm!(
                    "tilezero tmm0",
                    "tileloadd tmm1, [{x0} + {lda}*1]",
                    "tileloadd tmm2, [{w0} + {ldb}*1]",
                    "tdpbssd tmm0, tmm1, tmm2",
                    "tilestored [{s0} + {lds}*1], tmm0",
                    x0 = in(reg) x.add(b * BLOCK),
                    w0 = in(reg) weights.add(b * GROUPS * GROUP_STRIDE),
                    s0 = in(reg) sums.0[0].as_mut_ptr(),
                    lda = in(reg) t.k,
                    ldb = in(reg) GROUP_STRIDE,
                    lds = in(reg) 64usize,
                    options(nostack),
                );
                scale(&mut acc, &sums.0[0], t, xs, b, v);
            }
            for (r, a) in acc.iter().enumerate() {
                result[r][v] = *a;
            }
        }
    }
    let stored = apply_epilogue(t.epilogue, &mut result[..rows]);
    for (r, row) in result[..rows].iter().enumerate() {
        // SAFETY: row `r` of the panel's outputs exists in `dest`.
        unsafe {
            let cr = c.add(r * t.ldc);
            for v in 0..stored {
                _mm512_mask_storeu_ps(cr.add(16 * v), out[v], row[v]);
            }
        }
    }
}

/// `acc[r] += float(sums[r]) x scale(w, block b, vector v) x scale(row r, block b)`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn scale(acc: &mut [__m512; ROWS], sums: &[[i32; 16]; ROWS], t: &Tile, xs: *const f32, b: usize, v: usize) {
    // SAFETY: the panel holds `NR` scales per block; the rows `blocks` scales each.
    unsafe {
        let w = _mm512_loadu_ps(t.scales.add(b * NR + 16 * v));
        for (r, a) in acc.iter_mut().enumerate() {
            let s = _mm512_mul_ps(w, _mm512_set1_ps(*xs.add(r * t.blocks + b)));
            let exact = _mm512_cvtepi32_ps(_mm512_load_si512(sums[r].as_ptr().cast()));
            *a = _mm512_fmadd_ps(exact, s, *a);
        }
    }
}

//! Similarity kernels: dot products of an f32 query with f32 or f16 rows.
//!
//! A scan is memory-bound, so the kernels aim to read each row once at full bandwidth: AVX2 + FMA
//! with four independent accumulators, and F16C to widen half floats in registers. The best kernel
//! the CPU supports is chosen once at run time; the portable fallback gives the same results up to
//! float rounding.

use std::sync::OnceLock;

use half::f16;

type DotF32 = fn(&[f32], &[f32]) -> f32;
type DotF16 = fn(&[f32], &[f16]) -> f32;
type BlockF32 = fn(&[f32], &[f32], &mut [f32]);
type BlockF16 = fn(&[f32], &[f16], &mut [f32]);
type Stream = fn(&[u8]) -> u64;
type DotCodes = fn(&[u8], &[i8]) -> i32;

struct Kernels {
    f32: DotF32,
    f16: DotF16,
    block_f32: BlockF32,
    block_f16: BlockF16,
    stream: Stream,
    codes: DotCodes,
    name: &'static str,
}

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return Kernels {
                f32: x86::dot_f32,
                f16: x86::dot_f16,
                block_f32: x86::block_f32,
                block_f16: x86::block_f16,
                stream: x86::stream_read,
                codes: x86::dot_codes,
                name: "avx2+fma+f16c",
            };
        }
        Kernels {
            f32: portable_dot_f32,
            f16: portable_dot_f16,
            block_f32: |q, rows, out| portable_block(q, rows, out, portable_dot_f32),
            block_f16: |q, rows, out| portable_block(q, rows, out, portable_dot_f16),
            stream: portable_stream_read,
            codes: portable_dot_codes,
            name: "portable",
        }
    })
}

/// Which kernel set this CPU uses (reported by `mira-bench search`).
pub fn kernel_name() -> &'static str {
    kernels().name
}

/// Dot product of two f32 slices of equal length.
#[inline]
pub fn dot_f32(q: &[f32], row: &[f32]) -> f32 {
    assert_eq!(q.len(), row.len());
    (kernels().f32)(q, row)
}

/// Dot product of an f32 query with an f16 row of equal length.
#[inline]
pub fn dot_f16(q: &[f32], row: &[f16]) -> f32 {
    assert_eq!(q.len(), row.len());
    (kernels().f16)(q, row)
}

/// Dot products of `q` with consecutive rows: `out[i] = q · rows[i*d..(i+1)*d]`, `d = q.len()`.
/// One call per block of rows keeps dispatch out of the scan's inner loop.
#[inline]
pub fn dot_f32_block(q: &[f32], rows: &[f32], out: &mut [f32]) {
    assert_eq!(rows.len(), q.len() * out.len());
    (kernels().block_f32)(q, rows, out)
}

/// [`dot_f32_block`] over f16 rows.
#[inline]
pub fn dot_f16_block(q: &[f32], rows: &[f16], out: &mut [f32]) {
    assert_eq!(rows.len(), q.len() * out.len());
    (kernels().block_f16)(q, rows, out)
}

/// Reads every byte once and folds them into a checksum: the memory-bandwidth floor that a scan
/// of the same bytes is measured against.
pub fn stream_read(bytes: &[u8]) -> u64 {
    (kernels().stream)(bytes)
}

/// Integer dot product of 7-bit codes (`0..=127`) with an i8 query, the quantized graph walk's
/// kernel. Codes above 127 are the caller's bug but stay memory-safe (the AVX2 sum saturates).
#[inline]
pub fn dot_codes(codes: &[u8], q: &[i8]) -> i32 {
    assert_eq!(codes.len(), q.len());
    (kernels().codes)(codes, q)
}

/// Asks the CPU to start loading `bytes` from `p` into cache (a hint: nothing is dereferenced).
#[inline]
pub fn prefetch(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut line = 0;
        while line < bytes {
            // SAFETY: prefetching is a hint; any address is allowed and none is dereferenced.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(line) as *const i8)
            };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// Portable [`dot_codes`].
pub fn portable_dot_codes(codes: &[u8], q: &[i8]) -> i32 {
    codes.iter().zip(q).map(|(c, q)| i32::from(*c) * i32::from(*q)).sum()
}

fn portable_block<T>(q: &[f32], rows: &[T], out: &mut [f32], dot: fn(&[f32], &[T]) -> f32) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = dot(q, row);
    }
}

fn portable_stream_read(bytes: &[u8]) -> u64 {
    // Same fold as the AVX2 version: u64 words of the 128-byte blocks, then the tail's bytes.
    let n = bytes.len() / 128 * 128;
    let mut acc = [0u64; 8];
    for chunk in bytes[..n].chunks_exact(64) {
        for (a, w) in acc.iter_mut().zip(chunk.chunks_exact(8)) {
            *a = a.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
    }
    acc.iter().fold(0u64, |a, b| a.wrapping_add(*b)) + bytes[n..].iter().map(|b| u64::from(*b)).sum::<u64>()
}

/// Portable f32 dot product (eight partial sums, so the compiler can vectorise it).
pub fn portable_dot_f32(q: &[f32], row: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (qc, qt) = q.split_at(q.len() - q.len() % 8);
    let (rc, rt) = row.split_at(qc.len());
    for (a, b) in qc.chunks_exact(8).zip(rc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += a[i] * b[i];
        }
    }
    acc.iter().sum::<f32>() + qt.iter().zip(rt).map(|(a, b)| a * b).sum::<f32>()
}

/// Portable f32 x f16 dot product.
pub fn portable_dot_f16(q: &[f32], row: &[f16]) -> f32 {
    let mut acc = [0f32; 8];
    let (qc, qt) = q.split_at(q.len() - q.len() % 8);
    let (rc, rt) = row.split_at(qc.len());
    for (a, b) in qc.chunks_exact(8).zip(rc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += a[i] * b[i].to_f32();
        }
    }
    acc.iter().sum::<f32>() + qt.iter().zip(rt).map(|(a, b)| a * b.to_f32()).sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    pub fn dot_f32(q: &[f32], row: &[f32]) -> f32 {
        // SAFETY: selected only after avx2 and fma were detected; lengths are equal (checked by
        // the caller) and every load stays inside the slices.
        unsafe { dot_f32_avx2(q, row) }
    }

    pub fn dot_f16(q: &[f32], row: &[f16]) -> f32 {
        // SAFETY: as above, with f16c detected too.
        unsafe { dot_f16_avx2(q, row) }
    }

    /// Rows ahead of the current one whose cache lines are requested early. Rows cost compute as
    /// well as bandwidth (f16 most); prefetching keeps loads in flight while a row is summed.
    /// Measured with `mira-bench search`: f16 scans went from 1.6x to 1.04x the memory floor.
    const PREFETCH_ROWS: usize = 4;

    #[inline]
    #[target_feature(enable = "sse")]
    fn prefetch(p: *const i8, bytes: usize) {
        let mut line = 0;
        while line < bytes {
            // Prefetching is a hint: any address is allowed, none is dereferenced.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line));
            line += 64;
        }
    }

    pub fn block_f32(q: &[f32], rows: &[f32], out: &mut [f32]) {
        // SAFETY: as above; `rows` holds `out.len()` rows of `q.len()` (checked by the caller).
        unsafe { block_f32_avx2(q, rows, out) }
    }

    pub fn block_f16(q: &[f32], rows: &[f16], out: &mut [f32]) {
        // SAFETY: as above.
        unsafe { block_f16_avx2(q, rows, out) }
    }

    pub fn stream_read(bytes: &[u8]) -> u64 {
        // SAFETY: selected only after avx2 was detected; loads stay inside `bytes`.
        unsafe { stream_read_avx2(bytes) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_f32_avx2(q: &[f32], rows: &[f32], out: &mut [f32]) {
        let d = q.len();
        let n = out.len();
        for (i, o) in out.iter_mut().enumerate() {
            if i + PREFETCH_ROWS < n {
                prefetch(rows.as_ptr().wrapping_add((i + PREFETCH_ROWS) * d) as *const i8, d * 4);
            }
            // SAFETY: row i lies inside `rows`.
            *o = unsafe { dot_f32_avx2(q, rows.get_unchecked(i * d..(i + 1) * d)) };
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block_f16_avx2(q: &[f32], rows: &[f16], out: &mut [f32]) {
        let d = q.len();
        let n = out.len();
        for (i, o) in out.iter_mut().enumerate() {
            if i + PREFETCH_ROWS < n {
                prefetch(rows.as_ptr().wrapping_add((i + PREFETCH_ROWS) * d) as *const i8, d * 2);
            }
            // SAFETY: row i lies inside `rows`.
            *o = unsafe { dot_f16_avx2(q, rows.get_unchecked(i * d..(i + 1) * d)) };
        }
    }

    pub fn dot_codes(codes: &[u8], q: &[i8]) -> i32 {
        // SAFETY: selected only after avx2 was detected; lengths are equal (checked by the
        // caller) and every load stays inside the slices.
        unsafe { dot_codes_avx2(codes, q) }
    }

    /// u8 x i8 products summed in pairs to i16 (`maddubs`: 2 x 127 x 127 fits), then widened
    /// to i32 by a multiply-add with ones; two accumulators for the two load ports.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dot_codes_avx2(codes: &[u8], q: &[i8]) -> i32 {
        let n = codes.len();
        let (a, b) = (codes.as_ptr(), q.as_ptr());
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 2];
        let mut i = 0;
        unsafe {
            while i + 64 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let o = i + 32 * j;
                    let p = _mm256_maddubs_epi16(
                        _mm256_loadu_si256(a.add(o) as *const __m256i),
                        _mm256_loadu_si256(b.add(o) as *const __m256i),
                    );
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(p, ones));
                }
                i += 64;
            }
            while i + 32 <= n {
                let p = _mm256_maddubs_epi16(
                    _mm256_loadu_si256(a.add(i) as *const __m256i),
                    _mm256_loadu_si256(b.add(i) as *const __m256i),
                );
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(p, ones));
                i += 32;
            }
            let s = _mm256_add_epi32(acc[0], acc[1]);
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            let mut total = _mm_cvtsi128_si32(s);
            while i < n {
                total += i32::from(*a.add(i)) * i32::from(*b.add(i));
                i += 1;
            }
            total
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn stream_read_avx2(bytes: &[u8]) -> u64 {
        let p = bytes.as_ptr();
        let n = bytes.len() / 128 * 128;
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut i = 0;
        unsafe {
            while i < n {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_epi64(*a, _mm256_loadu_si256(p.add(i + 32 * j) as *const __m256i));
                }
                i += 128;
            }
            let s = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
            let mut lanes = [0u64; 4];
            _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, s);
            lanes.iter().fold(0u64, |a, b| a.wrapping_add(*b)) + bytes[n..].iter().map(|b| u64::from(*b)).sum::<u64>()
        }
    }

    /// Eight f16 at `p` widened to f32. A function, not a closure: closures do not inherit the
    /// enclosing target features, and an un-inlined intrinsic costs a call per 8 elements.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn widen(p: *const u16) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }

    #[inline]
    #[target_feature(enable = "avx")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_f32_avx2(q: &[f32], row: &[f32]) -> f32 {
        let n = q.len();
        let (a, b) = (q.as_ptr(), row.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        unsafe {
            while i + 32 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    *acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(o)), _mm256_loadu_ps(b.add(o)), *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc[0]);
                i += 8;
            }
            let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut total = hsum(sum);
            while i < n {
                total += *a.add(i) * *b.add(i);
                i += 1;
            }
            total
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_f16_avx2(q: &[f32], row: &[f16]) -> f32 {
        let n = q.len();
        let (a, b) = (q.as_ptr(), row.as_ptr() as *const u16);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        unsafe {
            while i + 32 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    *acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(o)), widen(b.add(o)), *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), widen(b.add(i)), acc[0]);
                i += 8;
            }
            let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut total = hsum(sum);
            while i < n {
                total += *a.add(i) * f16::from_bits(*b.add(i)).to_f32();
                i += 1;
            }
            total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect()
    }

    fn reference(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
    }

    #[test]
    fn kernels_match_reference_for_every_length() {
        for n in [1, 7, 8, 9, 31, 32, 33, 100, 512, 768, 1023] {
            let (a, b) = (data(n, n as u64), data(n, 1000 + n as u64));
            let expect = reference(&a, &b);
            let tol = 1e-4 * (n as f64).sqrt();
            assert!((f64::from(dot_f32(&a, &b)) - expect).abs() < tol, "f32 n={n}");
            assert!(
                (f64::from(portable_dot_f32(&a, &b)) - expect).abs() < tol,
                "portable f32 n={n}"
            );
            let b16: Vec<f16> = b.iter().map(|x| f16::from_f32(*x)).collect();
            let b16f: Vec<f32> = b16.iter().map(|x| x.to_f32()).collect();
            let expect16 = reference(&a, &b16f);
            assert!((f64::from(dot_f16(&a, &b16)) - expect16).abs() < tol, "f16 n={n}");
            assert!(
                (f64::from(portable_dot_f16(&a, &b16)) - expect16).abs() < tol,
                "portable f16 n={n}"
            );
        }
    }

    #[test]
    fn blocks_equal_row_by_row() {
        let dim = 37;
        let q = data(dim, 1);
        let rows = data(dim * 5, 2);
        let rows16: Vec<f16> = rows.iter().map(|x| f16::from_f32(*x)).collect();
        let (mut a, mut b) = ([0f32; 5], [0f32; 5]);
        dot_f32_block(&q, &rows, &mut a);
        dot_f16_block(&q, &rows16, &mut b);
        for i in 0..5 {
            assert_eq!(a[i], dot_f32(&q, &rows[i * dim..(i + 1) * dim]));
            assert_eq!(b[i], dot_f16(&q, &rows16[i * dim..(i + 1) * dim]));
        }
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(stream_read(&bytes), portable_stream_read(&bytes));
    }

    #[test]
    fn code_dot_products_are_exact_for_every_length() {
        let mut rng = fastrand::Rng::with_seed(9);
        for len in [0, 1, 31, 32, 33, 63, 64, 65, 200, 512] {
            let codes: Vec<u8> = (0..len).map(|_| rng.u8(0..=127)).collect();
            let q: Vec<i8> = (0..len).map(|_| rng.i8(-127..=127)).collect();
            assert_eq!(dot_codes(&codes, &q), portable_dot_codes(&codes, &q), "length {len}");
        }
        // The extremes cannot saturate the pairwise i16 sums.
        assert_eq!(dot_codes(&[127; 64], &[127; 64]), 64 * 127 * 127);
        assert_eq!(dot_codes(&[127; 64], &[-127; 64]), -64 * 127 * 127);
    }
}

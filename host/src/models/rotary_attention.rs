//! Causal attention for a decoder (the reranker's Qwen3) straight from its projections' rows,
//! on the CPU with AVX-512: the query, key and value projections' outputs stay in their row
//! layout (`tokens x heads x head_dim`, as the fused product writes them), each head is
//! gathered once by the worker that needs it, with Qwen3's per-head RMS norm and rotary
//! embedding applied as it is copied, and the context is written back in row layout, the
//! output projection's input.
//!
//! The same work on candle's ops is two norms, three transposes to `(batch, heads, len, dim)`,
//! two rotary passes and a transpose back: seven passes over the activations per layer, each a
//! fresh tensor. Here it is none beyond the gathers the attention's products need anyway. The
//! products and the softmax are [`super::attention`]'s.

use candle_core::{DType, Device, Tensor};

#[cfg(target_arch = "x86_64")]
use crate::models::linear::avx512;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Per-head RMS norms of queries and keys (weights of `head_dim`) and the rotary tables of the
/// rows' positions, applied to each head as it is gathered.
pub struct HeadPrep<'a> {
    pub q_norm: &'a [f32],
    pub k_norm: &'a [f32],
    pub eps: f32,
    /// `cos` and `sin` of the rotary angles for positions `past..past + len`: `len x head_dim / 2`.
    pub cos: &'a [f32],
    pub sin: &'a [f32],
}

/// The projections' shape: `batch` rows of `len` tokens (right-padded), `heads` query heads
/// and `kv_heads` key/value heads of `head_dim`.
#[derive(Clone, Copy, Debug)]
pub struct RowShape {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl RowShape {
    /// `(batch, len, heads, kv_heads, head_dim)`.
    fn dims(self) -> (usize, usize, usize, usize, usize) {
        (self.batch, self.len, self.heads, self.kv_heads, self.head_dim)
    }
}

/// Keys (normed and rotated) and values of a shared prefix: `(1, kv_heads, past, head_dim)`
/// each, f32 on the CPU.
pub type Prefix<'a> = (&'a Tensor, &'a Tensor);

/// What [`attend`] returns: the context `(batch x len, heads x head_dim)`, and with `keep` the
/// rows' own keys (normed and rotated) and values, `(batch, kv_heads, len, head_dim)` each.
pub type Attended = (Tensor, Option<(Tensor, Tensor)>);

/// Whether [`attend`] runs for projections of this device and dtype.
pub fn available(device: &Device, dtype: DType) -> bool {
    #[cfg(target_arch = "x86_64")]
    if device.is_cpu() && dtype == DType::F32 && avx512::available() {
        return true;
    }
    let _ = (device, dtype);
    false
}

/// Causal attention of `q` (`(batch x len, heads x head_dim)`) over `k` and `v` (`(batch x
/// len, kv_heads x head_dim)`) after `prefix`: token `i` of a row sees the whole prefix and
/// its row's tokens `..=i`. Queries and keys get `prep` as they are gathered. Only where
/// [`available`] holds.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    shape: RowShape,
    prefix: Option<Prefix>,
    prep: &HeadPrep,
    scale: f32,
    keep: bool,
) -> candle_core::Result<Attended> {
    let (b, s, h, hk, d) = shape.dims();
    let rows = b * s;
    if hk == 0 || h % hk != 0 || d % 2 != 0 {
        candle_core::bail!("attention of {h} heads over {hk} key/value heads of {d}");
    }
    if q.dims() != [rows, h * d] || k.dims() != [rows, hk * d] || v.dims() != k.dims() {
        candle_core::bail!(
            "attention of {:?} queries over {:?} keys and {:?} values for {shape:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if prep.q_norm.len() != d || prep.k_norm.len() != d || prep.cos.len() != s * d / 2 || prep.sin.len() != s * d / 2 {
        candle_core::bail!("head norms or rotary tables of the wrong size for {shape:?}");
    }
    #[cfg(target_arch = "x86_64")]
    if available(q.device(), q.dtype()) && k.dtype() == DType::F32 && v.dtype() == DType::F32 {
        return cpu(q, k, v, shape, prefix, prep, scale, keep);
    }
    let _ = (prefix, scale, keep);
    candle_core::bail!("row attention runs on an AVX-512 CPU in f32 only")
}

/// A buffer the workers write disjoint parts of.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: each task writes its own heads' columns of its own batch row (see `cpu`).
#[cfg(target_arch = "x86_64")]
unsafe impl Send for Shared {}
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for Shared {}

#[cfg(target_arch = "x86_64")]
impl Shared {
    /// The address of element `i` (a method, so closures capture the whole `Shared`).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn cpu(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    shape: RowShape,
    prefix: Option<Prefix>,
    prep: &HeadPrep,
    scale: f32,
    keep: bool,
) -> candle_core::Result<Attended> {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let (b, s, h, hk, d) = shape.dims();
    let (pk, pv, past) = super::attention::prefix_or_empty(prefix, hk, d)?;
    let held = super::attention::contiguous([q, k, v, &pk, &pv])?;
    let guards = held.each_ref().map(|t| t.storage_and_layout().0);
    let [q, k, v, pk, pv] = super::attention::f32_values(&guards, &held)?;
    let total = past + s;
    let groups = h / hk;
    let (qw, kw) = (h * d, hk * d);
    // Every element is written: each task writes its heads' columns of its batch row's tokens.
    let mut out = Vec::<f32>::with_capacity(b * s * qw);
    let mut kept = keep.then(|| {
        (
            Vec::<f32>::with_capacity(b * hk * s * d),
            Vec::<f32>::with_capacity(b * hk * s * d),
        )
    });
    let ctx_rows = Shared(out.as_mut_ptr());
    let kept_at = kept
        .as_mut()
        .map(|(k, v)| (Shared(k.as_mut_ptr()), Shared(v.as_mut_ptr())));
    (0..b * hk).into_par_iter().try_for_each(|task| {
        let (bi, kh) = (task / hk, task % hk);
        let rows = bi * s..(bi + 1) * s;
        // This row's keys and values for head `kh`, the prefix's first: `total x d`.
        let mut keys = vec![0f32; total * d];
        let mut vals = vec![0f32; total * d];
        keys[..past * d].copy_from_slice(&pk[kh * past * d..(kh + 1) * past * d]);
        vals[..past * d].copy_from_slice(&pv[kh * past * d..(kh + 1) * past * d]);
        for (t, row) in rows.clone().enumerate() {
            let at = row * kw + kh * d;
            let dst = &mut keys[(past + t) * d..(past + t + 1) * d];
            // SAFETY: `avx512::available()` held for `cpu` to be called.
            unsafe { norm_rotate(&k[at..at + d], prep.k_norm, prep.eps, rotary(prep, t, d), dst) };
            vals[(past + t) * d..(past + t + 1) * d].copy_from_slice(&v[at..at + d]);
        }
        if let Some((kk, vv)) = kept_at {
            let at = (bi * hk + kh) * s * d;
            // SAFETY: task (bi, kh) alone writes these s x d elements of each kept buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(keys[past * d..].as_ptr(), kk.at(at), s * d);
                std::ptr::copy_nonoverlapping(vals[past * d..].as_ptr(), vv.at(at), s * d);
            }
        }
        let keys = avx512::pack(&keys, total, d);
        let vals = avx512::pack_transposed(&vals, d, total);
        let mut query = vec![0f32; s * d];
        let mut scores = vec![MaybeUninit::<f32>::uninit(); s * total];
        let mut ctx = vec![MaybeUninit::<f32>::uninit(); s * d];
        for g in 0..groups {
            let head = kh * groups + g;
            for (t, row) in rows.clone().enumerate() {
                let at = row * qw + head * d;
                // SAFETY: as above.
                unsafe {
                    norm_rotate(
                        &q[at..at + d],
                        prep.q_norm,
                        prep.eps,
                        rotary(prep, t, d),
                        &mut query[t * d..(t + 1) * d],
                    )
                };
            }
            // SAFETY: AVX-512F as above; `one_head` writes all of `ctx`.
            unsafe {
                super::attention::one_head(
                    &query,
                    &keys,
                    &vals,
                    &mut scores,
                    &mut ctx,
                    (s, total, d),
                    past,
                    scale,
                    true,
                )
            };
            for (t, row) in rows.clone().enumerate() {
                // SAFETY: `ctx` is initialised; task (bi, kh) alone writes head `head`'s
                // columns of batch row `bi`'s tokens.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        ctx[t * d..].as_ptr().cast::<f32>(),
                        ctx_rows.at(row * qw + head * d),
                        d,
                    )
                };
            }
        }
        Ok::<(), candle_core::Error>(())
    })?;
    // SAFETY: every task wrote its part of each buffer above.
    unsafe { out.set_len(b * s * qw) };
    let ctx = Tensor::from_vec(out, (b * s, qw), &Device::Cpu)?;
    let kept = match kept {
        Some((mut kk, mut vv)) => {
            // SAFETY: as above.
            unsafe {
                kk.set_len(b * hk * s * d);
                vv.set_len(b * hk * s * d);
            }
            Some((
                Tensor::from_vec(kk, (b, hk, s, d), &Device::Cpu)?,
                Tensor::from_vec(vv, (b, hk, s, d), &Device::Cpu)?,
            ))
        }
        None => None,
    };
    Ok((ctx, kept))
}

/// The rotary table's `cos` and `sin` for token `t`.
#[cfg(target_arch = "x86_64")]
fn rotary<'a>(prep: &'a HeadPrep, t: usize, d: usize) -> (&'a [f32], &'a [f32]) {
    let half = d / 2;
    (&prep.cos[t * half..(t + 1) * half], &prep.sin[t * half..(t + 1) * half])
}

/// `dst = rotate(src / rms(src) * weight)`: RMS norm (`sqrt(mean(x²) + eps)`, as candle's
/// `rms_norm`), then the rotary embedding of the halves (`x1 cos - x2 sin`, `x1 sin + x2 cos`,
/// as candle's `rope`).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn norm_rotate(src: &[f32], weight: &[f32], eps: f32, (cos, sin): (&[f32], &[f32]), dst: &mut [f32]) {
    let d = src.len();
    let half = d / 2;
    assert!(weight.len() == d && dst.len() == d && cos.len() == half && sin.len() == half);
    let inv = 1.0 / (avx512::sum_of_squares(src) / d as f32 + eps).sqrt();
    let vectors = if half.is_multiple_of(16) { half } else { 0 };
    let scale = _mm512_set1_ps(inv);
    for i in (0..vectors).step_by(16) {
        // SAFETY: `i + 16 <= half`, and every slice holds `half` (or `d`) values, asserted above.
        unsafe {
            let at = |p: *const f32, j: usize| _mm512_loadu_ps(p.add(j));
            let a = _mm512_mul_ps(_mm512_mul_ps(at(src.as_ptr(), i), scale), at(weight.as_ptr(), i));
            let b = _mm512_mul_ps(
                _mm512_mul_ps(at(src.as_ptr(), half + i), scale),
                at(weight.as_ptr(), half + i),
            );
            let (c, s) = (at(cos.as_ptr(), i), at(sin.as_ptr(), i));
            _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
            _mm512_storeu_ps(
                dst.as_mut_ptr().add(half + i),
                _mm512_fmadd_ps(a, s, _mm512_mul_ps(b, c)),
            );
        }
    }
    for i in vectors..half {
        let a = src[i] * inv * weight[i];
        let b = src[half + i] * inv * weight[half + i];
        dst[i] = a * cos[i] - b * sin[i];
        dst[half + i] = a * sin[i] + b * cos[i];
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::models::test_values::{max_diff, random};

    /// What the decoder runs where [`attend`] does not: candle's norm, transposes and rope,
    /// then [`super::super::attention::attention`]. Returns the context in row layout and the
    /// rows' keys and values `(batch, kv_heads, len, head_dim)`.
    fn on_candles_ops(
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        shape: RowShape,
        prefix: Option<Prefix>,
        prep: &HeadPrep,
        scale: f64,
    ) -> (Tensor, Tensor, Tensor) {
        let RowShape {
            batch: b,
            len: l,
            heads: h,
            kv_heads: hk,
            head_dim: d,
        } = shape;
        let cpu = &Device::Cpu;
        let norm = |t: &Tensor, n: usize, w: &[f32]| {
            let w = Tensor::new(w, cpu).unwrap();
            let t = t.reshape((b, l, n, d)).unwrap();
            candle_nn::ops::rms_norm(&t, &w, prep.eps)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let cos = Tensor::from_vec(prep.cos.to_vec(), (l, d / 2), cpu).unwrap();
        let sin = Tensor::from_vec(prep.sin.to_vec(), (l, d / 2), cpu).unwrap();
        let q = candle_nn::rotary_emb::rope(&norm(q, h, prep.q_norm), &cos, &sin).unwrap();
        let k = candle_nn::rotary_emb::rope(&norm(k, hk, prep.k_norm), &cos, &sin).unwrap();
        let v = v
            .reshape((b, l, hk, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        let ctx = super::super::attention::attention(&q, &k, &v, prefix, scale, true)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b * l, h * d))
            .unwrap();
        (ctx, k, v)
    }

    /// Against candle's ops: grouped and ungrouped heads, one and several batch rows, with and
    /// without a prefix (itself made by `attend`'s kept keys and values), odd lengths.
    #[test]
    fn equals_norm_rope_and_attention_on_candles_ops() {
        if !available(&Device::Cpu, DType::F32) {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        }
        let cpu = &Device::Cpu;
        for &(b, l, h, hk, d, past) in &[
            (1, 1, 1, 1, 8, 0),
            (2, 13, 4, 2, 24, 0),
            (3, 9, 16, 8, 128, 21),
            (1, 40, 6, 6, 64, 5),
        ] {
            let tensor = |n: usize, w: usize, seed| Tensor::from_vec(random(n * w, seed), (n, w), cpu).unwrap();
            let (q_norm, k_norm) = (random(d, 11), random(d, 12));
            let angles = |len: usize, start: usize| -> (Vec<f32>, Vec<f32>) {
                let a: Vec<f32> = (start..start + len)
                    .flat_map(|p| (0..d / 2).map(move |i| p as f32 / 10f32.powf(i as f32 / d as f32)))
                    .collect();
                (a.iter().map(|x| x.cos()).collect(), a.iter().map(|x| x.sin()).collect())
            };
            // The prefix: one row of `past` tokens through `attend` itself, its kept keys and
            // values checked against candle's.
            let (pcos, psin) = angles(past, 0);
            let pprep = HeadPrep {
                q_norm: &q_norm,
                k_norm: &k_norm,
                eps: 1e-6,
                cos: &pcos,
                sin: &psin,
            };
            let pshape = RowShape {
                batch: 1,
                len: past,
                heads: h,
                kv_heads: hk,
                head_dim: d,
            };
            let (pq, pk, pv) = (tensor(past, h * d, 7), tensor(past, hk * d, 8), tensor(past, hk * d, 9));
            let scale = 1.0 / (d as f64).sqrt();
            let prefix = if past > 0 {
                let (ctx, kept) = attend(&pq, &pk, &pv, pshape, None, &pprep, scale as f32, true).unwrap();
                let (kk, vv) = kept.expect("kept");
                let (want, wk, wv) = on_candles_ops((&pq, &pk, &pv), pshape, None, &pprep, scale);
                assert!(max_diff(&want, &ctx) < 1e-4);
                assert!(max_diff(&wk, &kk) < 1e-5 && max_diff(&wv, &vv) == 0.0);
                Some((kk, vv))
            } else {
                None
            };
            let (cos, sin) = angles(l, past);
            let prep = HeadPrep {
                cos: &cos,
                sin: &sin,
                ..pprep
            };
            let shape = RowShape {
                batch: b,
                len: l,
                ..pshape
            };
            let (q, k, v) = (
                tensor(b * l, h * d, 1),
                tensor(b * l, hk * d, 2),
                tensor(b * l, hk * d, 3),
            );
            let prefix = prefix.as_ref().map(|(k, v)| (k, v));
            let (got, kept) = attend(&q, &k, &v, shape, prefix, &prep, scale as f32, true).unwrap();
            let (want, wk, wv) = on_candles_ops((&q, &k, &v), shape, prefix, &prep, scale);
            assert_eq!(got.dims(), &[b * l, h * d]);
            let diff = max_diff(&want, &got);
            assert!(diff < 1e-4, "{b}x{l} {h}/{hk}x{d} past {past}: {diff}");
            let (kk, vv) = kept.expect("kept");
            assert!(max_diff(&wk, &kk) < 1e-5 && max_diff(&wv, &vv) == 0.0);
            let (_, none) = attend(&q, &k, &v, shape, prefix, &prep, scale as f32, false).unwrap();
            assert!(none.is_none());
        }
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let cpu = &Device::Cpu;
        let t = |r: usize, w: usize| Tensor::zeros((r, w), DType::F32, cpu).unwrap();
        let w = [1f32; 8];
        let table = [0f32; 8];
        let prep = HeadPrep {
            q_norm: &w,
            k_norm: &w,
            eps: 1e-6,
            cos: &table,
            sin: &table,
        };
        let shape = RowShape {
            batch: 1,
            len: 2,
            heads: 2,
            kv_heads: 1,
            head_dim: 8,
        };
        if available(cpu, DType::F32) {
            assert!(attend(&t(2, 16), &t(2, 8), &t(2, 8), shape, None, &prep, 1.0, false).is_ok());
        }
        assert!(attend(&t(3, 16), &t(2, 8), &t(2, 8), shape, None, &prep, 1.0, false).is_err());
        assert!(attend(&t(2, 16), &t(2, 16), &t(2, 8), shape, None, &prep, 1.0, false).is_err());
        let odd = RowShape {
            heads: 3,
            kv_heads: 2,
            ..shape
        };
        assert!(attend(&t(2, 24), &t(2, 8), &t(2, 8), odd, None, &prep, 1.0, false).is_err());
        let short = HeadPrep {
            cos: &table[..4],
            ..prep
        };
        assert!(attend(&t(2, 16), &t(2, 8), &t(2, 8), shape, None, &short, 1.0, false).is_err());
    }
}

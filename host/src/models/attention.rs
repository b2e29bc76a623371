//! Scaled dot-product attention for the models' own forwards: `softmax(q kᵀ · scale + mask) v`
//! per batch row and head, with grouped key/value heads, an optional shared prefix of keys and
//! values, and an optional causal mask.
//!
//! On a CPU with AVX-512 it runs on Mira's f32 kernel ([`crate::models::linear`]): per batch
//! row and key/value head, the keys and values (prefix first) are packed once and every query
//! head of the group multiplies against them, the softmax in place between the two products.
//! No key or value is repeated per query head, broadcast over the batch or concatenated, and
//! the scores never leave the worker that computes them. Elsewhere it is candle's ops.

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};

#[cfg(target_arch = "x86_64")]
use crate::models::linear::avx512;

/// Keys and values every batch row sees before its own: `(1, kv_heads, len, head_dim)` each.
pub type Prefix<'a> = (&'a Tensor, &'a Tensor);

/// `q`: `(batch, heads, len, head_dim)`; `k`, `v`: `(batch, kv_heads, len, head_dim)`, `heads` a
/// multiple of `kv_heads`. With `causal`, query `i` sees the whole prefix and its own row's
/// keys up to `i`; without, every key. Returns `(batch, heads, len, head_dim)`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    prefix: Option<Prefix>,
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    let (b, h, s, d) = q.dims4()?;
    let (_, hk, t, _) = k.dims4()?;
    if h % hk != 0 || k.dims() != v.dims() || t != s {
        candle_core::bail!("attention of {:?} queries over {:?} keys", q.dims(), k.dims());
    }
    #[cfg(target_arch = "x86_64")]
    if q.device().is_cpu() && q.dtype() == DType::F32 && k.dtype() == DType::F32 && avx512::available() {
        return cpu(q, k, v, prefix, scale as f32, causal, (b, h, hk, s, d));
    }
    reference(q, k, v, prefix, scale, causal)
}

/// The same with candle's ops (any device and dtype; the scores in f32).
fn reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    prefix: Option<Prefix>,
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    let (b, h, s, _) = q.dims4()?;
    let hk = k.dim(1)?;
    let (k, v, past) = match prefix {
        None => (k.clone(), v.clone(), 0),
        Some((pk, pv)) => {
            let shape = (b, hk, pk.dim(2)?, pk.dim(3)?);
            (
                Tensor::cat(&[&pk.broadcast_as(shape)?, k], 2)?,
                Tensor::cat(&[&pv.broadcast_as(shape)?, v], 2)?,
                pk.dim(2)?,
            )
        }
    };
    let groups = h / hk;
    let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
    let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?;
    let mut scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
    if causal {
        let total = past + s;
        let mask: Vec<f32> = (0..s)
            .flat_map(|i| (0..total).map(move |j| if j <= past + i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        scores = scores.broadcast_add(&Tensor::from_vec(mask, (s, total), q.device())?)?;
    }
    candle_nn::ops::softmax_last_dim(&scores)?
        .to_dtype(q.dtype())?
        .matmul(&v)
}

/// The values of `t` (contiguous, f32 on the CPU) from its storage.
fn values<'a>(storage: &'a Storage, t: &Tensor) -> candle_core::Result<&'a [f32]> {
    let Storage::Cpu(CpuStorage::F32(data)) = storage else {
        candle_core::bail!("attention on the CPU takes f32");
    };
    let start = t.layout().start_offset();
    Ok(&data[start..start + t.elem_count()])
}

#[cfg(target_arch = "x86_64")]
fn cpu(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    prefix: Option<Prefix>,
    scale: f32,
    causal: bool,
    (b, h, hk, s, d): (usize, usize, usize, usize, usize),
) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let empty = Tensor::zeros((1, hk, 0, d), DType::F32, &Device::Cpu)?;
    let (pk, pv) = prefix.unwrap_or((&empty, &empty));
    if pk.dims() != [1, hk, pk.dim(2)?, d] || pv.dims() != pk.dims() {
        candle_core::bail!("a prefix of {:?} for keys of {hk} heads of {d}", pk.dims());
    }
    let past = pk.dim(2)?;
    // Borrowed from the tensors' storage, not copied.
    let tensors = [q, k, v, pk, pv].map(Tensor::contiguous);
    let [q, k, v, pk, pv] = match tensors {
        [Ok(q), Ok(k), Ok(v), Ok(pk), Ok(pv)] => [q, k, v, pk, pv],
        other => return Err(other.into_iter().find_map(Result::err).expect("one failed")),
    };
    let guards = [&q, &k, &v, &pk, &pv].map(|t| t.storage_and_layout().0);
    let (q, k, v, pk, pv) = (
        values(&guards[0], &q)?,
        values(&guards[1], &k)?,
        values(&guards[2], &v)?,
        values(&guards[3], &pk)?,
        values(&guards[4], &pv)?,
    );
    let total = past + s;
    let groups = h / hk;
    // Not zeroed: every head's s x d outputs are written by its second product.
    let mut out = Vec::<f32>::with_capacity(b * h * s * d);
    out.spare_capacity_mut()[..b * h * s * d]
        .par_chunks_mut(groups * s * d)
        .enumerate()
        .try_for_each(|(task, out)| {
            let (bi, kh) = (task / hk, task % hk);
            // This row's keys and values for head `kh`, the prefix's first: `total x d`.
            let mut keys = Vec::with_capacity(total * d);
            let mut vals = Vec::with_capacity(total * d);
            if past > 0 {
                keys.extend_from_slice(&pk[kh * past * d..(kh + 1) * past * d]);
                vals.extend_from_slice(&pv[kh * past * d..(kh + 1) * past * d]);
            }
            let own = (bi * hk + kh) * s * d;
            keys.extend_from_slice(&k[own..own + s * d]);
            vals.extend_from_slice(&v[own..own + s * d]);
            let keys = avx512::pack(&keys, total, d);
            let vals = avx512::pack_transposed(&vals, d, total);
            let mut scores = vec![MaybeUninit::<f32>::uninit(); s * total];
            for g in 0..groups {
                let head = kh * groups + g;
                let query = &q[(bi * h + head) * s * d..][..s * d];
                // SAFETY: `available()` was checked by the caller; the kernel writes all s x total
                // scores, then all s x d outputs.
                unsafe {
                    avx512::matmul(
                        query,
                        keys.as_slice(),
                        None,
                        &mut scores,
                        (s, total, d),
                        avx512::Epilogue::None,
                        1,
                    );
                    let scores: &mut [f32] = std::slice::from_raw_parts_mut(scores.as_mut_ptr().cast(), s * total);
                    for (i, row) in scores.chunks_exact_mut(total).enumerate() {
                        avx512::softmax_row(row, if causal { past + i + 1 } else { total }, scale);
                    }
                    let ctx = &mut out[g * s * d..(g + 1) * s * d];
                    let ctx: &mut [MaybeUninit<f32>] = std::slice::from_raw_parts_mut(ctx.as_mut_ptr().cast(), s * d);
                    avx512::matmul(
                        scores,
                        vals.as_slice(),
                        None,
                        ctx,
                        (s, d, total),
                        avx512::Epilogue::None,
                        1,
                    );
                }
            }
            Ok::<(), candle_core::Error>(())
        })?;
    // SAFETY: every chunk's heads were written above.
    unsafe { out.set_len(b * h * s * d) };
    Tensor::from_vec(out, (b, h, s, d), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let mut x = seed;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Against candle's ops: with and without a prefix and a causal mask, grouped heads, a
    /// head width and key count off the kernel's tiles.
    #[test]
    fn equals_candles_ops() {
        for &(b, h, hk, s, d, past, causal) in &[
            (1, 1, 1, 1, 8, 0, true),
            (2, 4, 2, 13, 24, 0, true),
            (3, 6, 6, 50, 64, 0, false),
            (2, 16, 8, 9, 128, 21, true),
        ] {
            let q = random((b, h, s, d), 1);
            let k = random((b, hk, s, d), 2);
            let v = random((b, hk, s, d), 3);
            let (pk, pv) = (random((1, hk, past, d), 4), random((1, hk, past, d), 5));
            let prefix = (past > 0).then_some((&pk, &pv));
            let scale = 1.0 / (d as f64).sqrt();
            let want = reference(&q, &k, &v, prefix, scale, causal).unwrap();
            let got = attention(&q, &k, &v, prefix, scale, causal).unwrap();
            assert_eq!(got.dims(), &[b, h, s, d]);
            let diff = (want - got)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            let diff = diff.to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{b}x{h}/{hk}x{s}x{d} past {past} causal {causal}: {diff}");
        }
    }
}

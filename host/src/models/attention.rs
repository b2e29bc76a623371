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

/// A prefix's keys and values checked against `kv_heads` heads of `d` (empty ones without a
/// prefix), and its length.
pub(super) fn prefix_or_empty(
    prefix: Option<Prefix>,
    kv_heads: usize,
    d: usize,
) -> candle_core::Result<(Tensor, Tensor, usize)> {
    let (pk, pv) = match prefix {
        Some((k, v)) => (k.clone(), v.clone()),
        None => {
            let empty = Tensor::zeros((1, kv_heads, 0, d), DType::F32, &Device::Cpu)?;
            (empty.clone(), empty)
        }
    };
    if pk.dims() != [1, kv_heads, pk.dim(2)?, d] || pv.dims() != pk.dims() {
        candle_core::bail!("a prefix of {:?} for keys of {kv_heads} heads of {d}", pk.dims());
    }
    let past = pk.dim(2)?;
    Ok((pk, pv, past))
}

/// `tensors`, each made contiguous (a copy only where one was not).
pub(super) fn contiguous<const N: usize>(tensors: [&Tensor; N]) -> candle_core::Result<[Tensor; N]> {
    let held = tensors
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(held.try_into().expect("N tensors"))
}

/// The values of contiguous f32 CPU tensors, borrowed from their storage through `guards`
/// (`storage_and_layout` of each), not copied.
pub(super) fn f32_values<'a, const N: usize, G: std::ops::Deref<Target = Storage>>(
    guards: &'a [G; N],
    tensors: &[Tensor; N],
) -> candle_core::Result<[&'a [f32]; N]> {
    let values = guards
        .iter()
        .zip(tensors)
        .map(|(g, t)| values(g, t))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(values.try_into().expect("N values"))
}

/// The values of `t` (contiguous, f32 on the CPU) from its storage.
pub(super) fn values<'a>(storage: &'a Storage, t: &Tensor) -> candle_core::Result<&'a [f32]> {
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
    let (pk, pv, past) = prefix_or_empty(prefix, hk, d)?;
    let held = contiguous([q, k, v, &pk, &pv])?;
    let guards = held.each_ref().map(|t| t.storage_and_layout().0);
    let [q, k, v, pk, pv] = f32_values(&guards, &held)?;
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
                let ctx = &mut out[g * s * d..(g + 1) * s * d];
                // SAFETY: `available()` was checked by the caller.
                unsafe {
                    one_head(
                        query,
                        &keys,
                        &vals,
                        &mut scores,
                        ctx,
                        (s, total, d),
                        past,
                        scale,
                        causal,
                    )
                };
            }
            Ok::<(), candle_core::Error>(())
        })?;
    // SAFETY: every chunk's heads were written above.
    unsafe { out.set_len(b * h * s * d) };
    Tensor::from_vec(out, (b, h, s, d), &Device::Cpu)
}

/// `ctx (s x d) = softmax(query keysᵀ · scale) vals` for one head: `query` is `s x d`, `keys`
/// and `vals` the head's `total x d` packed by [`avx512::pack`] and
/// [`avx512::pack_transposed`]; with `causal`, query `i` sees keys `..past + i + 1`. `scores`
/// is scratch (at least `s x total`); every output is written.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn one_head(
    query: &[f32],
    keys: &avx512::Panels,
    vals: &avx512::Panels,
    scores: &mut [std::mem::MaybeUninit<f32>],
    ctx: &mut [std::mem::MaybeUninit<f32>],
    (s, total, d): (usize, usize, usize),
    past: usize,
    scale: f32,
    causal: bool,
) {
    use std::mem::MaybeUninit;
    let nr = avx512::NR;
    let (keys, vals) = (keys.as_slice(), vals.as_slice());
    let panels = d.div_ceil(nr);
    // Causal heads go [`CAUSAL_CHUNK`] query rows at a time: rows `r0..r1` see keys
    // `..past + r1` at most, so both products stop there (the keys are packed in panels along
    // the keys, so a chunk's keys are the first panels; its values the first positions of each
    // panel of values). Otherwise all rows see all `total` keys, one chunk.
    let chunk_rows = if causal { CAUSAL_CHUNK } else { s.max(1) };
    let mut part = vec![
        MaybeUninit::<f32>::uninit();
        if panels > 1 && s > chunk_rows {
            chunk_rows * nr
        } else {
            0
        }
    ];
    for r0 in (0..s).step_by(chunk_rows) {
        let rows = chunk_rows.min(s - r0);
        let seen = if causal { past + r0 + rows } else { total };
        let chunk = &mut scores[..rows * seen];
        // SAFETY: AVX-512F per the caller. The first product writes the chunk's rows x seen
        // scores, which are then read as initialised; the second (per panel of the values
        // where the chunk sees fewer than all keys) all the chunk's rows x d outputs.
        unsafe {
            avx512::matmul(
                &query[r0 * d..(r0 + rows) * d],
                keys,
                None,
                chunk,
                (rows, seen, d),
                avx512::Epilogue::None,
                1,
            );
            let chunk: &mut [f32] = std::slice::from_raw_parts_mut(chunk.as_mut_ptr().cast(), rows * seen);
            for (i, row) in chunk.chunks_exact_mut(seen).enumerate() {
                avx512::softmax_row(row, if causal { past + r0 + i + 1 } else { seen }, scale);
            }
            let out = &mut ctx[r0 * d..(r0 + rows) * d];
            // One panel, or every key seen: the packed values' layout is the product's.
            if panels == 1 || seen == total {
                avx512::matmul(chunk, vals, None, out, (rows, d, seen), avx512::Epilogue::None, 1);
                continue;
            }
            for p in 0..panels {
                let cols = nr.min(d - p * nr);
                let v = &vals[p * total * nr..][..seen * nr];
                avx512::matmul(chunk, v, None, &mut part, (rows, cols, seen), avx512::Epilogue::None, 1);
                for (o, c) in out.chunks_exact_mut(d).zip(part.chunks_exact(cols)) {
                    o[p * nr..p * nr + cols].copy_from_slice(c);
                }
            }
        }
    }
}

/// Query rows per chunk of a causal head in [`one_head`]: each chunk multiplies only by the
/// keys its last row sees, which skips most of the masked half of the scores (the triangle
/// above the diagonal).
#[cfg(target_arch = "x86_64")]
const CAUSAL_CHUNK: usize = 24;

/// Attention over sequences packed side by side, as the CLIP towers run them: `qkv` is
/// `(rows, 3 x heads x head_dim)`, each row a token's queries, keys and values (a fused
/// projection's output), and `lens` splits the rows into sequences (`lens` sums to `rows`); each
/// sequence attends to itself only, with `causal` token `i` to its tokens `..=i`. Returns the
/// context `(rows, heads x head_dim)`, the layout the output projection takes. No row is padded:
/// texts of different lengths cost their own tokens.
pub fn packed(qkv: &Tensor, heads: usize, lens: &[usize], scale: f64, causal: bool) -> candle_core::Result<Tensor> {
    let (rows, three_width) = qkv.dims2()?;
    let width = three_width / 3;
    if three_width % 3 != 0 || heads == 0 || width % heads != 0 || lens.iter().sum::<usize>() != rows {
        candle_core::bail!(
            "packed attention of {:?} over {heads} heads and sequences of {lens:?}",
            qkv.dims()
        );
    }
    #[cfg(target_arch = "x86_64")]
    if qkv.device().is_cpu() && avx512::available() {
        let ctx = packed_cpu(
            &qkv.to_dtype(DType::F32)?,
            heads,
            lens,
            scale as f32,
            causal,
            (rows, width),
        )?;
        return ctx.to_dtype(qkv.dtype());
    }
    packed_reference(qkv, heads, lens, scale, causal)
}

/// The first row of each sequence of `lens` packed side by side.
pub fn starts(lens: &[usize]) -> Vec<usize> {
    lens.iter()
        .scan(0, |at, l| {
            let start = *at;
            *at += l;
            Some(start)
        })
        .collect()
}

/// [`packed`] by padding the sequences to the longest and running [`attention`] (any device and
/// dtype). Padding goes after each sequence, so a causal mask keeps it out of every real token;
/// without one, the sequences must be of one length.
fn packed_reference(
    qkv: &Tensor,
    heads: usize,
    lens: &[usize],
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    let (rows, three_width) = qkv.dims2()?;
    let (b, s) = (lens.len(), lens.iter().copied().max().unwrap_or(0));
    let hd = three_width / 3 / heads;
    let even = lens.iter().all(|l| *l == s);
    if !even && !causal {
        candle_core::bail!("attention without a causal mask over sequences of different lengths");
    }
    if rows == 0 {
        return Tensor::zeros((0, three_width / 3), qkv.dtype(), qkv.device());
    }
    let starts = starts(lens);
    let padded = if even {
        qkv.clone()
    } else {
        // Row j of sequence i is packed row starts[i] + j; its padding repeats its last row.
        let index: Vec<u32> = (0..b)
            .flat_map(|i| (0..s).map(move |j| (i, j)))
            .map(|(i, j)| (starts[i] + j.min(lens[i].saturating_sub(1))) as u32)
            .collect();
        qkv.index_select(&Tensor::new(index, qkv.device())?, 0)?
    };
    let qkv = padded.reshape((b, s, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?;
    let part = |i: usize| qkv.get(i)?.contiguous();
    let ctx = attention(&part(0)?, &part(1)?, &part(2)?, None, scale, causal)?
        .transpose(1, 2)?
        .reshape((b * s, heads * hd))?;
    if even {
        return Ok(ctx);
    }
    let real: Vec<u32> = (0..b)
        .flat_map(|i| (0..lens[i]).map(move |j| (i * s + j) as u32))
        .collect();
    ctx.index_select(&Tensor::new(real, ctx.device())?, 0)
}

#[cfg(target_arch = "x86_64")]
fn packed_cpu(
    qkv: &Tensor,
    heads: usize,
    lens: &[usize],
    scale: f32,
    causal: bool,
    (rows, width): (usize, usize),
) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let qkv = qkv.contiguous()?;
    let guard = qkv.storage_and_layout().0;
    let qkv = values(&guard, &qkv)?;
    let d = width / heads;
    // Each sequence's rows of the output, to be written by one task.
    let mut out = Vec::<f32>::with_capacity(rows * width);
    let mut parts = Vec::with_capacity(lens.len());
    let mut rest = &mut out.spare_capacity_mut()[..rows * width];
    let mut start = 0;
    for &len in lens {
        let (part, tail) = rest.split_at_mut(len * width);
        parts.push((start, len, part));
        rest = tail;
        start += len;
    }
    parts.into_par_iter().for_each(|(start, s, out)| {
        if s == 0 {
            return;
        }
        let rows = &qkv[start * 3 * width..(start + s) * 3 * width];
        // One head's `s x d` of the queries (0), keys (1) or values (2), copied out of the rows.
        let gather = |part: usize, head: usize, buf: &mut Vec<f32>| {
            buf.clear();
            for row in rows.chunks_exact(3 * width) {
                buf.extend_from_slice(&row[part * width + head * d..][..d]);
            }
        };
        let (mut query, mut kv) = (Vec::with_capacity(s * d), Vec::with_capacity(s * d));
        let mut scores = vec![MaybeUninit::<f32>::uninit(); s * s];
        let mut ctx = vec![MaybeUninit::<f32>::uninit(); s * d];
        for head in 0..heads {
            gather(0, head, &mut query);
            gather(1, head, &mut kv);
            let keys = avx512::pack(&kv, s, d);
            gather(2, head, &mut kv);
            let vals = avx512::pack_transposed(&kv, d, s);
            // SAFETY: AVX-512F was checked by the caller.
            unsafe { one_head(&query, &keys, &vals, &mut scores, &mut ctx, (s, s, d), 0, scale, causal) };
            for (row, c) in out.chunks_exact_mut(width).zip(ctx.chunks_exact(d)) {
                row[head * d..(head + 1) * d].copy_from_slice(c);
            }
        }
    });
    // SAFETY: each sequence's task wrote every head's columns of its rows.
    unsafe { out.set_len(rows * width) };
    Tensor::from_vec(out, (rows, width), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::test_values::max_diff;

    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let v = crate::models::test_values::random(shape.0 * shape.1 * shape.2 * shape.3, seed);
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
            // Past the causal chunk: one panel of values, two, and a partial second.
            (1, 2, 1, 50, 64, 3, true),
            (1, 2, 1, 50, 128, 0, true),
            (2, 4, 2, 61, 80, 7, true),
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
            let diff = max_diff(&want, &got);
            assert!(diff < 1e-4, "{b}x{h}/{hk}x{s}x{d} past {past} causal {causal}: {diff}");
        }
    }

    /// Packed sequences, each against candle's ops over that sequence alone; the padded
    /// fallback (what a GPU runs) against the same.
    #[test]
    fn packed_sequences_equal_each_sequence_alone() {
        for (heads, d, lens, causal) in [
            (2, 8, vec![3, 1, 7], true),
            (4, 16, vec![5, 5], false),
            (8, 64, vec![17, 6, 12, 9, 17], true),
            (1, 8, vec![], true),
        ] {
            let rows: usize = lens.iter().sum();
            let qkv = random((1, 1, rows, 3 * heads * d), 7)
                .reshape((rows, 3 * heads * d))
                .unwrap();
            let scale = 1.0 / (d as f64).sqrt();
            let got = packed(&qkv, heads, &lens, scale, causal).unwrap();
            let padded = packed_reference(&qkv, heads, &lens, scale, causal).unwrap();
            assert_eq!(got.dims(), &[rows, heads * d]);
            assert_eq!(padded.dims(), &[rows, heads * d]);
            let mut start = 0;
            for &len in &lens {
                let seq = qkv
                    .narrow(0, start, len)
                    .unwrap()
                    .reshape((1, len, 3, heads, d))
                    .unwrap();
                let seq = seq.permute((2, 0, 3, 1, 4)).unwrap();
                let part = |i: usize| seq.get(i).unwrap().contiguous().unwrap();
                let want = reference(&part(0), &part(1), &part(2), None, scale, causal)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .reshape((len, heads * d))
                    .unwrap();
                for (name, t) in [("packed", &got), ("padded", &padded)] {
                    let diff = max_diff(&want, &t.narrow(0, start, len).unwrap());
                    assert!(
                        diff < 1e-4,
                        "{name} {lens:?} x {heads} heads of {d}, causal {causal}: {diff}"
                    );
                }
                start += len;
            }
        }
        let qkv = random((1, 1, 5, 24), 1).reshape((5, 24)).unwrap();
        assert!(
            packed(&qkv, 2, &[2, 2], 1.0, true).is_err(),
            "lengths must cover the rows"
        );
        assert!(packed_reference(&qkv, 2, &[2, 3], 1.0, false).is_err());
    }
}

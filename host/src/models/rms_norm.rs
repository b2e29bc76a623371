//! RMS norm (`x / sqrt(mean(x²) + eps) * weight`, as transformers' and candle's) for the
//! decoder's own forward, with the residual add before it fused in: a pre-norm decoder runs
//! `x = x + f(h); h = norm(x)` twice a layer, and on an AVX-512 CPU in f32 that is one pass
//! over the rows here (each row's sum, its squares and its normed values while it is in L1)
//! instead of candle's add and norm, two fresh tensors and three passes. Elsewhere (a GPU,
//! bf16) it is candle's ops.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

#[cfg(target_arch = "x86_64")]
use crate::models::linear::avx512;

/// An RMS norm over the last dimension, its weights read once from the checkpoint.
pub struct RmsNorm {
    candle: candle_nn::RmsNorm,
    /// The weights as plain values, for the fused pass and for callers that apply the norm
    /// themselves (the head norms of [`super::rotary_attention`]).
    weights: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    /// The norm `vb` names (`weight` of `n`).
    pub fn load(n: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<Self> {
        let candle = candle_nn::rms_norm(n, eps, vb)?;
        let weights = candle.weight().to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok(RmsNorm {
            candle,
            weights,
            eps: eps as f32,
        })
    }

    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// `norm(x)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        #[cfg(target_arch = "x86_64")]
        if fused(x) {
            let (_, normed) = self.cpu(x, None)?;
            return Ok(normed);
        }
        self.candle.forward(x)
    }

    /// `(x + y, norm(x + y))`.
    pub fn add_forward(&self, x: &Tensor, y: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        if x.dims() != y.dims() {
            candle_core::bail!("adding {:?} to {:?}", y.dims(), x.dims());
        }
        #[cfg(target_arch = "x86_64")]
        if fused(x) && y.dtype() == DType::F32 {
            return self.cpu(x, Some(y));
        }
        let sum = (x + y)?;
        let normed = self.candle.forward(&sum)?;
        Ok((sum, normed))
    }

    /// `(x + y, norm(x + y))` (`x` alone without `y`) over rows of the last dimension.
    #[cfg(target_arch = "x86_64")]
    fn cpu(&self, x: &Tensor, y: Option<&Tensor>) -> candle_core::Result<(Tensor, Tensor)> {
        use rayon::prelude::*;
        let n = self.weights.len();
        let width = x.dims().last().copied().unwrap_or(0);
        if width != n || n == 0 {
            candle_core::bail!("a norm of {n} over rows of {width}");
        }
        let x = x.contiguous()?;
        let guard = x.storage_and_layout().0;
        let xs = super::attention::values(&guard, &x)?;
        let y = y.map(Tensor::contiguous).transpose()?;
        let y_guard = y.as_ref().map(|y| y.storage_and_layout().0);
        let ys = match (&y, &y_guard) {
            (Some(y), Some(g)) => Some(super::attention::values(g, y)?),
            _ => None,
        };
        let mut normed = vec![0f32; xs.len()];
        let mut sum = vec![0f32; if ys.is_some() { xs.len() } else { 0 }];
        // Rows in chunks, so that a small product's rows are not one task each.
        let chunk = 16 * n;
        let (w, eps) = (&self.weights[..], self.eps);
        match ys {
            Some(ys) => normed
                .par_chunks_mut(chunk)
                .zip(sum.par_chunks_mut(chunk))
                .enumerate()
                .for_each(|(i, (out, sum))| {
                    let at = i * chunk..i * chunk + out.len();
                    let rows = xs[at.clone()].chunks_exact(n).zip(ys[at].chunks_exact(n));
                    for ((x, y), (s, o)) in rows.zip(sum.chunks_exact_mut(n).zip(out.chunks_exact_mut(n))) {
                        // SAFETY: `fused` checked AVX-512F.
                        unsafe { add_norm_row(x, Some(y), s, w, eps, o) };
                    }
                }),
            None => normed.par_chunks_mut(chunk).enumerate().for_each(|(i, out)| {
                let at = i * chunk..i * chunk + out.len();
                for (x, o) in xs[at].chunks_exact(n).zip(out.chunks_exact_mut(n)) {
                    // SAFETY: as above; without `y` the row is `x` and no sum is stored.
                    unsafe { add_norm_row(x, None, &mut [], w, eps, o) };
                }
            }),
        }
        let shape = x.shape().clone();
        let normed = Tensor::from_vec(normed, shape.clone(), &Device::Cpu)?;
        let sum = if ys.is_some() {
            Tensor::from_vec(sum, shape, &Device::Cpu)?
        } else {
            x.clone()
        };
        Ok((sum, normed))
    }
}

/// Whether the fused pass runs for `x`.
#[cfg(target_arch = "x86_64")]
fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && avx512::available()
}

/// One row: `sum = x + y` (when `y`), `out = sum / sqrt(mean(sum²) + eps) * weight`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_norm_row(x: &[f32], y: Option<&[f32]>, sum: &mut [f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let row: &[f32] = match y {
        Some(y) => {
            for ((s, a), b) in sum.iter_mut().zip(x).zip(y) {
                *s = a + b;
            }
            sum
        }
        None => x,
    };
    let squares = avx512::sum_of_squares(row);
    let inv = 1.0 / (squares / row.len() as f32 + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
        *o = v * inv * w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::test_values::max_diff;

    /// Against candle's add and norm, for row counts around the chunk size and odd widths.
    #[test]
    fn equals_candles_add_and_norm() {
        let cpu = &Device::Cpu;
        for &(rows, n) in &[(1, 8), (3, 1024), (16, 20), (17, 64), (50, 33)] {
            let random = |len: usize, seed: u64| crate::models::test_values::random(len, seed + rows as u64);
            let weight = Tensor::from_vec(random(n, 100), n, cpu).unwrap();
            let vb = VarBuilder::from_tensors([("weight".to_string(), weight.clone())].into(), DType::F32, cpu);
            let norm = RmsNorm::load(n, 1e-6, vb).unwrap();
            let x = Tensor::from_vec(random(2 * rows * n, 200), (2, rows, n), cpu).unwrap();
            let y = Tensor::from_vec(random(2 * rows * n, 300), (2, rows, n), cpu).unwrap();
            let (sum, normed) = norm.add_forward(&x, &y).unwrap();
            let want_sum = (&x + &y).unwrap();
            let want = candle_nn::ops::rms_norm(&want_sum, &weight, 1e-6).unwrap();
            assert_eq!(max_diff(&sum, &want_sum), 0.0);
            assert!(max_diff(&normed, &want) < 1e-5, "{rows} x {n}");
            let alone = norm.forward(&x).unwrap();
            let want = candle_nn::ops::rms_norm(&x, &weight, 1e-6).unwrap();
            assert!(max_diff(&alone, &want) < 1e-5, "{rows} x {n} alone");
        }
        let vb = VarBuilder::zeros(DType::F32, cpu);
        let norm = RmsNorm::load(8, 1e-6, vb).unwrap();
        let x = Tensor::zeros((2, 8), DType::F32, cpu).unwrap();
        assert!(
            norm.add_forward(&x, &Tensor::zeros((2, 4), DType::F32, cpu).unwrap())
                .is_err()
        );
    }
}

//! Linear layers for the models' own forwards (CLIP's towers, the reranker's decoder): on a CPU
//! with AVX-512F and f32 weights, the weights are packed once at load for Mira's kernel
//! ([`avx512`]); everywhere else (a GPU, bf16, a CPU without AVX-512) they are candle's
//! `Linear`. The result is the same product, summed in a different order (within f32 rounding).
//! [`Linear::quantized`] makes the int8 layers of `dtype = "q8"`: Mira's VNNI kernel ([`q8`])
//! where it runs, candle's quantized matmul elsewhere.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "x86_64")]
mod q8;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, DType, Device, Module, Storage, Tensor};
use candle_nn::VarBuilder;

/// Inputs per int8 block (GGML's Q8_0 and Mira's kernel alike).
pub const Q8_BLOCK: usize = 32;

/// An activation a linear layer can apply to its outputs as it writes them (on the packed
/// kernel, in registers: one pass over the outputs instead of three).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)` (CLIP's `quick_gelu`).
    QuickGelu,
}

impl Activation {
    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
        }
    }
}

/// A product's output shared by the worker threads; each writes the columns of its own panels.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: the kernels' threads write disjoint columns (see `split_panels`).
#[cfg(target_arch = "x86_64")]
unsafe impl Send for Out {}
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for Out {}

/// Runs `work` over `0..panels` cut into `threads` contiguous ranges, on rayon's pool (the
/// calling thread takes the first).
#[cfg(target_arch = "x86_64")]
fn split_panels(panels: usize, threads: usize, work: impl Fn(std::ops::Range<usize>) + Sync) {
    let threads = threads.clamp(1, panels.max(1));
    let range = move |t: usize| panels * t / threads..panels * (t + 1) / threads;
    if threads == 1 {
        return work(range(0));
    }
    let work = &work;
    rayon::scope(|s| {
        for t in 1..threads {
            s.spawn(move |_| work(range(t)));
        }
        work(range(0));
    });
}

/// Products smaller than this (multiply-adds) run on one thread: splitting costs more.
const PARALLEL_WORK: usize = 1 << 20;

/// A linear layer `y = x · Wᵀ + b` (weights `out x in`, as in PyTorch).
pub struct Linear {
    kind: Kind,
    out_features: usize,
}

enum Kind {
    Candle(candle_nn::Linear),
    /// candle's int8 blocks (GGML Q8_0) with an f32 bias: q8 where Mira's kernel does not run
    /// (a GPU, a CPU without AVX-512 VNNI).
    CandleQ8 {
        weight: QMatMul,
        bias: Option<Tensor>,
    },
    /// Mira's int8 blocks ([`q8`]), the same quantization as Q8_0's.
    #[cfg(target_arch = "x86_64")]
    Q8 {
        panels: q8::Q8Panels,
        bias: Option<Vec<f32>>,
    },
    /// `W` in the kernel's panels; the original tensor is dropped, so a packed model holds one
    /// copy of its weights.
    #[cfg(target_arch = "x86_64")]
    Packed {
        panels: avx512::Panels,
        bias: Option<Vec<f32>>,
        in_features: usize,
    },
}

impl Linear {
    /// The layer `vb` names (`weight`, and `bias` when `bias`), packed where the kernel runs.
    pub fn load(in_features: usize, out_features: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        Self::new(candle_nn::linear_b(in_features, out_features, bias, vb)?)
    }

    /// Wraps candle's layer, packing its weights where the kernel runs.
    pub fn new(l: candle_nn::Linear) -> candle_core::Result<Self> {
        let (out_features, in_features) = l.weight().dims2()?;
        #[cfg(target_arch = "x86_64")]
        if packable(l.weight()) {
            let w = l.weight().contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let bias = l.bias().map(|b| b.to_vec1::<f32>()).transpose()?;
            return Ok(Linear {
                kind: Kind::Packed {
                    panels: avx512::pack(&w, out_features, in_features),
                    bias,
                    in_features,
                },
                out_features,
            });
        }
        Ok(Linear {
            kind: Kind::Candle(l),
            out_features,
        })
    }

    /// The layer with int8 weights in blocks of 32 along its inputs (GGML's Q8_0 quantization:
    /// per block, absmax / 127 as the scale), on Mira's VNNI kernel where it runs, else
    /// candle's quantized matmul. A layer whose input width is not a multiple of the block
    /// stays as [`Linear::new`] makes it.
    pub fn quantized(l: candle_nn::Linear) -> candle_core::Result<Self> {
        let (out_features, in_features) = l.weight().dims2()?;
        if !in_features.is_multiple_of(Q8_BLOCK) || in_features == 0 {
            return Self::new(l);
        }
        #[cfg(target_arch = "x86_64")]
        if l.weight().device().is_cpu() && q8::available() {
            let w = l
                .weight()
                .to_dtype(DType::F32)?
                .contiguous()?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let bias = l.bias().map(|b| b.to_dtype(DType::F32)?.to_vec1::<f32>()).transpose()?;
            return Ok(Linear {
                kind: Kind::Q8 {
                    panels: q8::Q8Panels::new(&w, out_features, in_features),
                    bias,
                },
                out_features,
            });
        }
        let weight = QMatMul::from_qtensor(QTensor::quantize(l.weight(), GgmlDType::Q8_0)?)?;
        Ok(Linear {
            kind: Kind::CandleQ8 {
                weight,
                bias: l.bias().cloned(),
            },
            out_features,
        })
    }

    /// Which kernel runs the layer: `"candle"`, `"candle q8"`, `"packed f32"` or `"q8 vnni"`.
    pub fn kernel(&self) -> &'static str {
        match self.kind {
            Kind::Candle(_) => "candle",
            Kind::CandleQ8 { .. } => "candle q8",
            #[cfg(target_arch = "x86_64")]
            Kind::Packed { .. } => "packed f32",
            #[cfg(target_arch = "x86_64")]
            Kind::Q8 { .. } => "q8 vnni",
        }
    }

    /// Whether the weights are in Mira's f32 kernel's panels.
    pub fn is_packed(&self) -> bool {
        self.kernel() == "packed f32"
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

#[cfg(target_arch = "x86_64")]
fn packable(w: &Tensor) -> bool {
    w.device().is_cpu() && w.dtype() == DType::F32 && w.elem_count() > 0 && avx512::available()
}

impl Linear {
    /// `activation(x · Wᵀ + b)`.
    pub fn forward_activated(&self, x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
        match &self.kind {
            Kind::Candle(l) => match activation {
                None => l.forward(x),
                Some(a) => a.apply(&l.forward(x)?),
            },
            Kind::CandleQ8 { weight, bias } => {
                let y = weight.forward(&x.contiguous()?)?;
                let y = match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                };
                match activation {
                    None => Ok(y),
                    Some(a) => a.apply(&y),
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kind::Q8 { panels, bias } => {
                let y = q8_forward(x, panels, bias.as_deref(), self.out_features)?;
                match activation {
                    None => Ok(y),
                    Some(a) => a.apply(&y),
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kind::Packed {
                panels,
                bias,
                in_features,
            } => {
                let epilogue = match activation {
                    None => avx512::Epilogue::None,
                    Some(Activation::QuickGelu) => avx512::Epilogue::QuickGelu,
                };
                packed_forward(
                    x,
                    panels.as_slice(),
                    bias.as_deref(),
                    (*in_features, self.out_features),
                    epilogue,
                )
            }
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_activated(x, None)
    }
}

/// Runs `kernel(a, m, out)` over the rows of `x` (f32 on the CPU, last dimension `k`) into a
/// new `(..., n)` tensor; `kernel` must write all `m x n` outputs.
#[cfg(target_arch = "x86_64")]
fn rows_into(
    x: &Tensor,
    (k, n): (usize, usize),
    kernel: impl FnOnce(&[f32], usize, &mut [std::mem::MaybeUninit<f32>], usize),
) -> candle_core::Result<Tensor> {
    let dims = x.dims();
    if dims.last() != Some(&k) {
        candle_core::bail!("linear layer of {k} inputs applied to a tensor of shape {dims:?}");
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        candle_core::bail!("Mira's CPU kernels take f32 on the CPU, not {:?}", x.dtype());
    }
    let x = x.contiguous()?;
    let m = x.elem_count() / k;
    // Not zeroed: the kernel writes every element (a fresh buffer of zeros would be written twice).
    let mut out = Vec::<f32>::with_capacity(m * n);
    {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
            candle_core::bail!("Mira's CPU kernels take f32 on the CPU");
        };
        let a = &data[layout.start_offset()..layout.start_offset() + m * k];
        let threads = if m * n * k < PARALLEL_WORK {
            1
        } else {
            rayon::current_num_threads()
        };
        kernel(a, m, &mut out.spare_capacity_mut()[..m * n], threads);
        // SAFETY: the kernel wrote all m x n outputs.
        unsafe { out.set_len(m * n) };
    }
    let mut shape = dims.to_vec();
    *shape.last_mut().expect("checked above") = n;
    Tensor::from_vec(out, shape, &Device::Cpu)
}

#[cfg(target_arch = "x86_64")]
fn q8_forward(x: &Tensor, panels: &q8::Q8Panels, bias: Option<&[f32]>, n: usize) -> candle_core::Result<Tensor> {
    rows_into(x, (panels.in_features(), n), |a, m, out, threads| {
        // SAFETY: a q8 layer exists only where `q8::available()` held.
        unsafe { q8::matmul(a, panels, bias, out, m, threads) }
    })
}

#[cfg(target_arch = "x86_64")]
fn packed_forward(
    x: &Tensor,
    panels: &[f32],
    bias: Option<&[f32]>,
    (k, n): (usize, usize),
    epilogue: avx512::Epilogue,
) -> candle_core::Result<Tensor> {
    rows_into(x, (k, n), |a, m, out, threads| {
        // SAFETY: a packed layer exists only where `avx512::available()` held, with k > 0.
        unsafe { avx512::matmul(a, panels, bias, out, (m, n, k), epilogue, threads) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// Edges of the tiling: rows not a multiple of the tile (6) or of a row block, columns not a
    /// multiple of the panel (64), with and without bias, batched inputs (inner dimensions past
    /// one block, 1024, are in the activation test below).
    #[test]
    fn packed_layers_equal_candles_product() {
        for &(m, n, k, bias) in &[
            (1, 1, 1, false),
            (5, 33, 7, true),
            (13, 64, 256, false),
            (25, 100, 300, true),
            (400, 96, 513, true),
            (777, 40, 64, false),
        ] {
            let w = Tensor::from_vec(random(n * k, 1), (n, k), &Device::Cpu).unwrap();
            let b = bias.then(|| Tensor::from_vec(random(n, 2), n, &Device::Cpu).unwrap());
            let reference = candle_nn::Linear::new(w, b);
            let ours = Linear::new(reference.clone()).unwrap();
            assert_eq!(ours.out_features(), n);
            let x = Tensor::from_vec(random(m * k, 3), (1, m, k), &Device::Cpu).unwrap();
            let want = reference
                .forward(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got = ours.forward(&x).unwrap();
            assert_eq!(got.dims(), &[1, m, n]);
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4 * (k as f32).sqrt(), "{m}x{n}x{k}: off by {worst}");
        }
    }

    #[test]
    fn the_activation_equals_candles_ops_after_the_product() {
        for &(m, n, k) in &[(7, 70, 300), (30, 64, 1500)] {
            let w = Tensor::from_vec(random(n * k, 6), (n, k), &Device::Cpu).unwrap();
            let b = Tensor::from_vec(random(n, 7), n, &Device::Cpu).unwrap();
            let reference = candle_nn::Linear::new((w * 4.0).unwrap(), Some(b));
            let ours = Linear::new(reference.clone()).unwrap();
            let x = Tensor::from_vec(random(m * k, 8), (m, k), &Device::Cpu).unwrap();
            let want = Activation::QuickGelu.apply(&reference.forward(&x).unwrap()).unwrap();
            let got = ours.forward_activated(&x, Some(Activation::QuickGelu)).unwrap();
            let (want, got) = (
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(
                want.iter().any(|v| *v < -0.1) && want.iter().any(|v| *v > 10.0),
                "both tails are exercised"
            );
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
    }

    /// Mira's int8 layer against candle's Q8_0 matmul (the same quantization of weights and
    /// activations, candle's scales in f16) and against the f32 product.
    #[test]
    fn q8_layers_equal_candles_q8_and_stay_near_f32() {
        for &(m, n, k, bias) in &[
            (1, 8, 32, false),
            (7, 40, 96, true),
            (50, 100, 1024, true),
            (200, 64, 3072, false),
        ] {
            let w = Tensor::from_vec(random(n * k, 9), (n, k), &Device::Cpu).unwrap();
            let b = bias.then(|| Tensor::from_vec(random(n, 10), n, &Device::Cpu).unwrap());
            let dense = candle_nn::Linear::new(w.clone(), b.clone());
            let ours = Linear::quantized(dense.clone()).unwrap();
            let theirs = Linear {
                kind: Kind::CandleQ8 {
                    weight: QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap(),
                    bias: b,
                },
                out_features: n,
            };
            let x = Tensor::from_vec(random(m * k, 11), (1, m, k), &Device::Cpu).unwrap();
            let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let exact = flat(dense.forward(&x).unwrap());
            let got = flat(ours.forward(&x).unwrap());
            let candle = flat(theirs.forward(&x).unwrap());
            let scale = exact.iter().map(|v| v.abs()).sum::<f32>() / exact.len() as f32;
            // Worst and mean differences, relative to the outputs' mean magnitude: a layout or
            // scale mistake is off by the outputs' own size.
            let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale;
            let mean = |a: &[f32], b: &[f32]| {
                a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32 / scale
            };
            for (what, other) in [("f32", &exact), ("candle's q8", &candle)] {
                let (w, m_) = (worst(&got, other), mean(&got, other));
                assert!(
                    w < 0.05 && m_ < 0.01,
                    "{m}x{n}x{k}: {w} at worst, {m_} on average from {what}"
                );
            }
            assert!(mean(&candle, &exact) > 1e-5, "the products are quantized");
        }
    }

    #[test]
    fn an_input_width_off_the_block_stays_dense() {
        let w = Tensor::from_vec(random(16 * 40, 12), (16, 40), &Device::Cpu).unwrap();
        let l = Linear::quantized(candle_nn::Linear::new(w, None)).unwrap();
        assert!(matches!(l.kernel(), "packed f32" | "candle"), "{}", l.kernel());
    }

    #[test]
    fn a_transposed_input_is_multiplied_as_its_values() {
        let w = Tensor::from_vec(random(48 * 20, 4), (48, 20), &Device::Cpu).unwrap();
        let reference = candle_nn::Linear::new(w, None);
        let ours = Linear::new(reference.clone()).unwrap();
        let x = Tensor::from_vec(random(20 * 9, 5), (20, 9), &Device::Cpu)
            .unwrap()
            .t()
            .unwrap();
        let want = reference
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got = ours
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn a_wrong_width_is_an_error() {
        let w = Tensor::zeros((8, 4), DType::F32, &Device::Cpu).unwrap();
        let ours = Linear::new(candle_nn::Linear::new(w, None)).unwrap();
        let x = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(ours.forward(&x).is_err());
    }
}

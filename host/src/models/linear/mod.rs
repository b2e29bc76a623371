//! Linear layers for the models' own forwards (CLIP's towers, the reranker's decoder): on a CPU
//! with AVX-512F and f32 weights, the weights are packed once at load for Mira's kernel
//! ([`avx512`]); everywhere else (a GPU, bf16, a CPU without AVX-512) they are candle's
//! `Linear`. The result is the same product, summed in a different order (within f32 rounding).
//! [`Linear::quantized`] makes the int8 layers of `dtype = "q8"`: Mira's int8 kernels where
//! they run (on the AMX tiles, [`amx`], where the CPU and OS give them; AVX-512 VNNI, [`q8`],
//! otherwise; the same weights and sums either way), candle's quantized matmul elsewhere.

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "x86_64")]
mod q8;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, DType, Device, Module, Storage, Tensor};
use candle_nn::VarBuilder;

/// Inputs per int8 block (GGML's Q8_0 and Mira's kernel alike).
pub const Q8_BLOCK: usize = 32;

/// An activation a linear layer can apply to its outputs as it writes them (on Mira's kernels,
/// in registers: one pass over the outputs instead of three).
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

/// What Mira's kernels apply to each output as they store it.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Epilogue {
    None,
    /// `x * sigmoid(1.702 x)`, CLIP's activation.
    QuickGelu,
    /// `silu(g) * u` of a panel's two halves: its first `NR / 2` columns are gate outputs, the
    /// next `NR / 2` the up outputs of the same features (see [`interleave`]); the panel
    /// writes `NR / 2` outputs.
    SwiGlu,
}

#[cfg(target_arch = "x86_64")]
impl Epilogue {
    fn of(activation: Option<Activation>) -> Epilogue {
        match activation {
            None => Epilogue::None,
            Some(Activation::QuickGelu) => Epilogue::QuickGelu,
        }
    }

    /// Output columns a panel of `nr` product columns writes.
    fn outputs_per_panel(self, nr: usize) -> usize {
        if self == Epilogue::SwiGlu { nr / 2 } else { nr }
    }

    /// Output columns of a product of `n` columns in panels of `nr` (at most: a gated
    /// product's last panel may be padding in part).
    fn outputs(self, n: usize, nr: usize) -> usize {
        if self == Epilogue::SwiGlu {
            n.div_ceil(nr) * nr / 2
        } else {
            n
        }
    }
}

/// A product's output shared by the worker threads; each writes the columns of its own panels.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Out(*mut f32);
// SAFETY: the kernels' threads write disjoint columns (see `split_panels`).
#[cfg(target_arch = "x86_64")]
unsafe impl Send for Out {}
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for Out {}

/// Where a kernel writes: consecutive ranges of output columns, each into its own row-major
/// buffer that wide (the query, key and value projections of an attention, one product). Every
/// range but the last is a whole number of the kernel's panels, so no panel spans two buffers.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Dest<'a>(&'a [(Out, usize)]);

#[cfg(target_arch = "x86_64")]
impl Dest<'_> {
    /// Output column `col`: its address in row 0 of its buffer, the buffer's row stride, and
    /// how many of the buffer's columns are left from there.
    fn at(&self, mut col: usize) -> (*mut f32, usize, usize) {
        for &(out, width) in self.0 {
            if col < width {
                return (out.0.wrapping_add(col), width, width - col);
            }
            col -= width;
        }
        panic!("output column past the destination's {} columns", self.width());
    }

    fn width(&self) -> usize {
        self.0.iter().map(|p| p.1).sum()
    }
}

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

/// A linear layer `y = x · Wᵀ + b` (weights `out x in`, as in PyTorch), or several layers that
/// read the same input run as one product ([`Linear::stacked`], [`Linear::gated`]).
pub struct Linear {
    kind: Kind,
    /// Outputs of [`Module::forward`]: the layer's, or the gated features of [`Linear::gated`].
    out_features: usize,
    shape: Shape,
}

/// How the product's columns make the layer's outputs.
enum Shape {
    /// One layer.
    Single,
    /// Layers of these widths, their weights one after another.
    Stacked(Vec<usize>),
    /// `silu(gate) * up`: on Mira's kernels, gate and up rows interleaved in half panels
    /// ([`interleave`]); on candle's, the gate's rows then the up rows.
    Gated,
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
        /// Rows of the packed product (more than the outputs for [`Shape::Gated`]).
        columns: usize,
    },
}

/// Which kernel a layer gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Choice {
    Candle,
    CandleQ8,
    #[cfg(target_arch = "x86_64")]
    Q8,
    #[cfg(target_arch = "x86_64")]
    Packed,
}

impl Choice {
    /// Mira's kernels where they run (f32 on an AVX-512 CPU; int8 on one with VNNI, for an
    /// input width that is a whole number of blocks), candle's elsewhere. A q8 layer whose input
    /// width is not a multiple of the block stays dense.
    fn of(w: &Tensor, q8: bool) -> candle_core::Result<Choice> {
        let (_, in_features) = w.dims2()?;
        let q8 = q8 && in_features.is_multiple_of(Q8_BLOCK) && in_features > 0;
        #[cfg(target_arch = "x86_64")]
        if w.device().is_cpu() && w.elem_count() > 0 {
            if q8 && q8::available() {
                return Ok(Choice::Q8);
            }
            if !q8 && w.dtype() == DType::F32 && avx512::available() {
                return Ok(Choice::Packed);
            }
        }
        Ok(if q8 { Choice::CandleQ8 } else { Choice::Candle })
    }

    /// Columns per panel of Mira's kernel (0 for candle's).
    fn panel(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Choice::Q8 => q8::NR,
            #[cfg(target_arch = "x86_64")]
            Choice::Packed => avx512::NR,
            _ => 0,
        }
    }
}

fn values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.contiguous()?.flatten_all()?.to_vec1::<f32>()
}

/// The kernel's layer for `weight` (`out x in`) and `bias`.
fn build(choice: Choice, weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Kind> {
    let (n, k) = weight.dims2()?;
    Ok(match choice {
        Choice::Candle => Kind::Candle(candle_nn::Linear::new(weight.clone(), bias.cloned())),
        Choice::CandleQ8 => Kind::CandleQ8 {
            weight: QMatMul::from_qtensor(QTensor::quantize(weight, GgmlDType::Q8_0)?)?,
            bias: bias.cloned(),
        },
        #[cfg(target_arch = "x86_64")]
        Choice::Q8 => Kind::Q8 {
            panels: q8::Q8Panels::new(&values(weight)?, n, k),
            bias: bias.map(values).transpose()?,
        },
        #[cfg(target_arch = "x86_64")]
        Choice::Packed => Kind::Packed {
            panels: avx512::pack(&values(weight)?, n, k),
            bias: bias.map(values).transpose()?,
            in_features: k,
            columns: n,
        },
    })
}

/// Rows of `gate` and `up` (`n x k` each, row-major) in groups of `half`: `half` gate rows,
/// then the same features' `half` up rows, the last group padded with zero rows; so a panel of
/// `2 x half` columns holds both halves of `half` features. Biases (`n` each) the same way.
fn interleave(gate: &[f32], up: &[f32], n: usize, k: usize, half: usize) -> Vec<f32> {
    let groups = n.div_ceil(half);
    let mut out = vec![0f32; groups * 2 * half * k];
    for (g, chunk) in out.chunks_exact_mut(2 * half * k).enumerate() {
        let rows = half.min(n - g * half);
        let (to_gate, to_up) = chunk.split_at_mut(half * k);
        to_gate[..rows * k].copy_from_slice(&gate[g * half * k..][..rows * k]);
        to_up[..rows * k].copy_from_slice(&up[g * half * k..][..rows * k]);
    }
    out
}

impl Linear {
    /// The layer `vb` names (`weight`, and `bias` when `bias`), packed where the kernel runs.
    pub fn load(in_features: usize, out_features: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        Self::new(candle_nn::linear_b(in_features, out_features, bias, vb)?)
    }

    /// Wraps candle's layer, packing its weights where the kernel runs.
    pub fn new(l: candle_nn::Linear) -> candle_core::Result<Self> {
        Self::single(l, false)
    }

    /// The layer with int8 weights in blocks of 32 along its inputs (GGML's Q8_0 quantization:
    /// per block, absmax / 127 as the scale), on Mira's VNNI kernel where it runs, else
    /// candle's quantized matmul. A layer whose input width is not a multiple of the block
    /// stays as [`Linear::new`] makes it.
    pub fn quantized(l: candle_nn::Linear) -> candle_core::Result<Self> {
        Self::single(l, true)
    }

    fn single(l: candle_nn::Linear, q8: bool) -> candle_core::Result<Self> {
        let out_features = l.weight().dims2()?.0;
        let choice = Choice::of(l.weight(), q8)?;
        if choice == Choice::Candle {
            return Ok(Linear {
                kind: Kind::Candle(l),
                out_features,
                shape: Shape::Single,
            });
        }
        Ok(Linear {
            kind: build(choice, l.weight(), l.bias())?,
            out_features,
            shape: Shape::Single,
        })
    }

    /// Layers that read the same input (an attention's query, key and value projections) as
    /// one product, int8 with `q8` as [`Linear::quantized`]: the input is read, and for int8
    /// quantized, once. [`Linear::forward_parts`] gives each layer's output. The layers have
    /// biases all or none.
    pub fn stacked(layers: &[candle_nn::Linear], q8: bool) -> candle_core::Result<Self> {
        if layers.is_empty() {
            candle_core::bail!("no layers to stack");
        }
        let widths = layers
            .iter()
            .map(|l| Ok(l.weight().dims2()?.0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let weight = Tensor::cat(&layers.iter().map(|l| l.weight()).collect::<Vec<_>>(), 0)?;
        let biases: Vec<&Tensor> = layers.iter().filter_map(|l| l.bias()).collect();
        let bias = match biases.len() {
            0 => None,
            n if n == layers.len() => Some(Tensor::cat(&biases, 0)?),
            _ => candle_core::bail!("stacked layers have biases all or none"),
        };
        let choice = Choice::of(&weight, q8)?;
        Ok(Linear {
            kind: build(choice, &weight, bias.as_ref())?,
            out_features: widths.iter().sum(),
            shape: Shape::Stacked(widths),
        })
    }

    /// `silu(gate(x)) * up(x)`, the first half of a SwiGLU feed-forward, as one product with
    /// the activation applied as the outputs are written (Mira's kernels); int8 with `q8`.
    pub fn gated(gate: candle_nn::Linear, up: candle_nn::Linear, q8: bool) -> candle_core::Result<Self> {
        let (n, k) = gate.weight().dims2()?;
        if up.weight().dims2()? != (n, k) || gate.bias().is_some() != up.bias().is_some() {
            candle_core::bail!(
                "a gate of {:?} and an up projection of {:?} (with a bias each or neither)",
                gate.weight().dims(),
                up.weight().dims()
            );
        }
        let choice = Choice::of(gate.weight(), q8)?;
        let (weight, bias) = if choice.panel() > 0 {
            let half = choice.panel() / 2;
            let w = interleave(&values(gate.weight())?, &values(up.weight())?, n, k, half);
            let rows = w.len() / k;
            let bias = match (gate.bias(), up.bias()) {
                (Some(g), Some(u)) => Some(Tensor::from_vec(
                    interleave(&values(g)?, &values(u)?, n, 1, half),
                    rows,
                    &Device::Cpu,
                )?),
                _ => None,
            };
            (Tensor::from_vec(w, (rows, k), &Device::Cpu)?, bias)
        } else {
            let bias = match (gate.bias(), up.bias()) {
                (Some(g), Some(u)) => Some(Tensor::cat(&[g, u], 0)?),
                _ => None,
            };
            (Tensor::cat(&[gate.weight(), up.weight()], 0)?, bias)
        };
        Ok(Linear {
            kind: build(choice, &weight, bias.as_ref())?,
            out_features: n,
            shape: Shape::Gated,
        })
    }

    /// Which kernel runs the layer: `"candle"`, `"candle q8"`, `"packed f32"`, `"q8 vnni"` or
    /// `"q8 amx"`.
    pub fn kernel(&self) -> &'static str {
        match &self.kind {
            Kind::Candle(_) => "candle",
            Kind::CandleQ8 { .. } => "candle q8",
            #[cfg(target_arch = "x86_64")]
            Kind::Packed { .. } => "packed f32",
            #[cfg(target_arch = "x86_64")]
            Kind::Q8 { panels, .. } if panels.amx() => "q8 amx",
            #[cfg(target_arch = "x86_64")]
            Kind::Q8 { .. } => "q8 vnni",
        }
    }

    /// An int8 layer on the AVX-512 VNNI kernel where it would run on AMX (to compare the two
    /// kernels, which give the same sums); any other layer as it is.
    pub fn on_vnni(mut self) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Kind::Q8 { panels, .. } = &mut self.kind {
            panels.use_vnni();
        }
        self
    }

    /// Whether the weights are in Mira's f32 kernel's panels.
    pub fn is_packed(&self) -> bool {
        self.kernel() == "packed f32"
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

impl Linear {
    /// `activation(x · Wᵀ + b)` (for a [`Linear::gated`] layer, its gated features, which take
    /// no further activation).
    pub fn forward_activated(&self, x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
        if matches!(self.shape, Shape::Gated) {
            if activation.is_some() {
                candle_core::bail!("a gated layer applies its own activation");
            }
            return self.gated_forward(x);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(y) = self.mira_forward(x, &[self.out_features], Epilogue::of(activation))? {
            return Ok(y.into_iter().next().expect("one part"));
        }
        let y = self.candle_product(x)?;
        match activation {
            None => Ok(y),
            Some(a) => a.apply(&y),
        }
    }

    /// Each stacked layer's output (see [`Linear::stacked`]); one output for a single layer.
    pub fn forward_parts(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let widths = match &self.shape {
            Shape::Single => return Ok(vec![self.forward(x)?]),
            Shape::Gated => candle_core::bail!("a gated layer has one output"),
            Shape::Stacked(w) => w,
        };
        #[cfg(target_arch = "x86_64")]
        {
            // Straight into each part's buffer when every part but the last fills whole panels.
            let panel = match self.kind {
                Kind::Q8 { .. } => q8::NR,
                Kind::Packed { .. } => avx512::NR,
                _ => 0,
            };
            if panel > 0
                && widths[..widths.len() - 1].iter().all(|w| w.is_multiple_of(panel))
                && let Some(parts) = self.mira_forward(x, widths, Epilogue::None)?
            {
                return Ok(parts);
            }
            if let Some(y) = self.mira_forward(x, &[self.out_features], Epilogue::None)? {
                return split(&y[0], widths);
            }
        }
        split(&self.candle_product(x)?, widths)
    }

    fn gated_forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        #[cfg(target_arch = "x86_64")]
        if let Some(y) = self.mira_forward(x, &[self.out_features], Epilogue::SwiGlu)? {
            return Ok(y.into_iter().next().expect("one part"));
        }
        let y = self.candle_product(x)?;
        let n = self.out_features;
        let gate = y.narrow(candle_core::D::Minus1, 0, n)?;
        let up = y.narrow(candle_core::D::Minus1, n, n)?;
        candle_nn::ops::silu(&gate)? * up
    }

    /// The product on candle's kernels (`None` from Mira's: use [`Linear::mira_forward`]).
    fn candle_product(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.kind {
            Kind::Candle(l) => l.forward(x),
            Kind::CandleQ8 { weight, bias } => {
                let y = weight.forward(&x.contiguous()?)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            #[cfg(target_arch = "x86_64")]
            _ => unreachable!("Mira's kernels run through mira_forward"),
        }
    }

    /// The product on Mira's kernels into parts of `widths` (see [`Dest`]), or `None` for a
    /// layer on candle's.
    #[cfg(target_arch = "x86_64")]
    fn mira_forward(
        &self,
        x: &Tensor,
        widths: &[usize],
        epilogue: Epilogue,
    ) -> candle_core::Result<Option<Vec<Tensor>>> {
        Ok(Some(match &self.kind {
            Kind::Q8 { panels, bias } => rows_into(x, panels.in_features(), widths, |a, m, dest, threads| {
                // SAFETY: a q8 layer exists only where `q8::available()` held.
                unsafe { q8::matmul(a, panels, bias.as_deref(), dest, m, epilogue, threads) }
            })?,
            Kind::Packed {
                panels,
                bias,
                in_features,
                columns,
            } => rows_into(x, *in_features, widths, |a, m, dest, threads| {
                // SAFETY: a packed layer exists only where `avx512::available()` held, with k > 0.
                unsafe {
                    avx512::matmul_into(
                        a,
                        panels.as_slice(),
                        bias.as_deref(),
                        dest,
                        (m, *columns, *in_features),
                        epilogue,
                        threads,
                    )
                }
            })?,
            _ => return Ok(None),
        }))
    }
}

/// `y`'s last dimension cut into parts of `widths`, each contiguous.
fn split(y: &Tensor, widths: &[usize]) -> candle_core::Result<Vec<Tensor>> {
    let mut at = 0;
    widths
        .iter()
        .map(|&w| {
            let part = y.narrow(candle_core::D::Minus1, at, w)?.contiguous();
            at += w;
            part
        })
        .collect()
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_activated(x, None)
    }
}

/// Runs `kernel(a, m, dest, threads)` over the rows of `x` (f32 on the CPU, last dimension
/// `k`) into new `(..., width)` tensors, one per width; `kernel` must write all `m` rows of
/// every part.
#[cfg(target_arch = "x86_64")]
fn rows_into(
    x: &Tensor,
    k: usize,
    widths: &[usize],
    kernel: impl FnOnce(&[f32], usize, Dest, usize),
) -> candle_core::Result<Vec<Tensor>> {
    let dims = x.dims();
    if dims.last() != Some(&k) {
        candle_core::bail!("linear layer of {k} inputs applied to a tensor of shape {dims:?}");
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        candle_core::bail!("Mira's CPU kernels take f32 on the CPU, not {:?}", x.dtype());
    }
    let x = x.contiguous()?;
    let m = x.elem_count() / k;
    let n: usize = widths.iter().sum();
    // Not zeroed: the kernel writes every element (a fresh buffer of zeros would be written twice).
    let mut outs: Vec<Vec<f32>> = widths.iter().map(|w| Vec::with_capacity(m * w)).collect();
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
        let parts: Vec<(Out, usize)> = outs
            .iter_mut()
            .zip(widths)
            .map(|(o, &w)| (Out(o.spare_capacity_mut().as_mut_ptr().cast()), w))
            .collect();
        kernel(a, m, Dest(&parts), threads);
        for (o, w) in outs.iter_mut().zip(widths) {
            // SAFETY: the kernel wrote all m rows of every part.
            unsafe { o.set_len(m * w) };
        }
    }
    outs.into_iter()
        .zip(widths)
        .map(|(o, &w)| {
            let mut shape = dims.to_vec();
            *shape.last_mut().expect("checked above") = w;
            Tensor::from_vec(o, shape, &Device::Cpu)
        })
        .collect()
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
                shape: Shape::Single,
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

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn layer(n: usize, k: usize, bias: bool, seed: u64) -> candle_nn::Linear {
        let w = Tensor::from_vec(random(n * k, seed), (n, k), &Device::Cpu).unwrap();
        let b = bias.then(|| Tensor::from_vec(random(n, seed + 1), n, &Device::Cpu).unwrap());
        candle_nn::Linear::new(w, b)
    }

    /// Worst difference relative to the mean magnitude of `want`.
    fn off(want: &[f32], got: &[f32]) -> f32 {
        assert_eq!(want.len(), got.len());
        let scale = want.iter().map(|v| v.abs()).sum::<f32>() / want.len() as f32;
        want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale
    }

    /// AMX against VNNI on the same int8 weights and activations: the same int32 sums per
    /// block scaled in the same order, so the same floats, for single, stacked and gated
    /// layers; row counts on and off the tile's 16, odd and even block counts. (Where the CPU
    /// has no AMX there is nothing to compare.)
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn amx_and_vnni_give_the_same_floats() {
        if !amx::available() {
            eprintln!("no AMX on this CPU: nothing to compare");
            return;
        }
        for &(m, n, k, bias) in &[
            (1, 8, 32, false),
            (17, 40, 96, true),
            (16, 64, 64, true),
            (50, 100, 1024, true),
            (200, 64, 3072, false),
            (33, 1024, 1024, false),
        ] {
            let x = Tensor::from_vec(random(m * k, 50), (1, m, k), &Device::Cpu).unwrap();
            let l = layer(n, k, bias, 51);
            let single = Linear::quantized(l.clone()).unwrap();
            let stacked = Linear::stacked(&[layer(32, k, bias, 53), l.clone()], true).unwrap();
            let gated = Linear::gated(l.clone(), layer(n, k, bias, 55), true).unwrap();
            for (what, on_amx) in [("single", single), ("stacked", stacked), ("gated", gated)] {
                assert_eq!(on_amx.kernel(), "q8 amx");
                let want = on_amx.forward(&x).unwrap();
                let on_vnni = on_amx.on_vnni();
                assert_eq!(on_vnni.kernel(), "q8 vnni");
                let got = on_vnni.forward(&x).unwrap();
                assert_eq!(want.dims(), got.dims());
                assert_eq!(flat(&want), flat(&got), "{what} {m}x{n}x{k} bias {bias}");
            }
        }
    }

    /// Parts whose widths are whole panels (written straight into each part) and parts that are
    /// not (one product, then cut), f32 and int8, with and without biases.
    #[test]
    fn stacked_layers_give_each_layers_output() {
        for &(widths, k, m, bias) in &[
            (&[64usize, 64, 64][..], 96, 9, true),
            (&[128, 32, 32], 64, 30, false),
            (&[40, 24, 70], 128, 7, true),
            (&[1, 5], 32, 3, false),
        ] {
            let layers: Vec<_> = widths
                .iter()
                .enumerate()
                .map(|(i, &n)| layer(n, k, bias, 20 + 2 * i as u64))
                .collect();
            let x = Tensor::from_vec(random(m * k, 30), (1, m, k), &Device::Cpu).unwrap();
            for q8 in [false, true] {
                let stacked = Linear::stacked(&layers, q8).unwrap();
                assert_eq!(stacked.out_features(), widths.iter().sum::<usize>());
                let parts = stacked.forward_parts(&x).unwrap();
                assert_eq!(parts.len(), widths.len());
                for ((part, l), &n) in parts.iter().zip(&layers).zip(widths) {
                    assert_eq!(part.dims(), &[1, m, n]);
                    let single = if q8 {
                        Linear::quantized(l.clone())
                    } else {
                        Linear::new(l.clone())
                    }
                    .unwrap();
                    let want = flat(&single.forward(&x).unwrap());
                    let worst = off(&want, &flat(part));
                    // The same kernel on the same rows: equal up to the order of f32 sums.
                    assert!(worst < 1e-4, "{widths:?} q8 {q8}: off by {worst}");
                }
                let whole = flat(&stacked.forward(&x).unwrap());
                let joined: Vec<f32> = flat(&Tensor::cat(&parts, 2).unwrap());
                assert_eq!(whole, joined, "the layer's output is its parts side by side");
            }
        }
        let mixed = [layer(8, 32, true, 1), layer(8, 32, false, 2)];
        assert!(Linear::stacked(&mixed, false).is_err());
        assert!(Linear::stacked(&[], false).is_err());
    }

    /// `silu(gate) * up` against candle's ops on the separate products: feature counts that are
    /// and are not multiples of a panel's half, f32 and int8, with biases, inputs past one block
    /// of the inner dimension.
    #[test]
    fn a_gated_layer_equals_silu_of_the_gate_times_up() {
        for &(n, k, m, bias) in &[
            (16, 32, 1, false),
            (40, 96, 13, true),
            (100, 1024, 9, false),
            (64, 1088, 40, true),
        ] {
            let gate = layer(n, k, bias, 40);
            let up = layer(n, k, bias, 42);
            let gate = candle_nn::Linear::new((gate.weight() * 3.0).unwrap(), gate.bias().cloned());
            let x = Tensor::from_vec(random(2 * m * k, 44), (2, m, k), &Device::Cpu).unwrap();
            for q8 in [false, true] {
                let wrap = |l: &candle_nn::Linear| {
                    if q8 {
                        Linear::quantized(l.clone())
                    } else {
                        Linear::new(l.clone())
                    }
                    .unwrap()
                };
                let g = wrap(&gate).forward(&x).unwrap();
                let want = flat(&(candle_nn::ops::silu(&g).unwrap() * wrap(&up).forward(&x).unwrap()).unwrap());
                let gated = Linear::gated(gate.clone(), up.clone(), q8).unwrap();
                assert_eq!(gated.out_features(), n);
                let got = gated.forward(&x).unwrap();
                assert_eq!(got.dims(), &[2, m, n]);
                let worst = off(&want, &flat(&got));
                assert!(worst < 1e-3, "{n}x{k} q8 {q8} ({}): off by {worst}", gated.kernel());
                assert!(want.iter().any(|v| *v < -0.05), "the gate's negative side is exercised");
                assert!(gated.forward_activated(&x, Some(Activation::QuickGelu)).is_err());
            }
        }
        assert!(Linear::gated(layer(8, 32, false, 1), layer(9, 32, false, 2), false).is_err());
        assert!(Linear::gated(layer(8, 32, true, 1), layer(8, 32, false, 2), false).is_err());
    }
}

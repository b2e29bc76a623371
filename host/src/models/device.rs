//! Device and dtype selection from strings (`cpu`, `cuda:0`; `f32`, `f16`, `bf16`).

use candle_core::{DType, Device};

use super::ModelError;

/// Element type of the weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelDType {
    #[default]
    F32,
    F16,
    BF16,
    /// The reranker's linear layers as int8 blocks (GGML's Q8_0 quantization: 32 weights and
    /// one scale per block), quantized from the checkpoint's weights at load, layer by layer;
    /// the activations are quantized the same way per product; norms, attention and
    /// embeddings stay f32. On a CPU with AVX-512 VNNI, Mira's own kernel
    /// ([`crate::models::linear`]); elsewhere candle's quantized matmul. Reranker only.
    Q8,
}

impl ModelDType {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match s {
            "f32" => Ok(ModelDType::F32),
            "f16" => Ok(ModelDType::F16),
            "bf16" => Ok(ModelDType::BF16),
            "q8" => Ok(ModelDType::Q8),
            other => Err(ModelError::Input(format!(
                "unknown dtype `{other}` (expected f32, f16, bf16, or q8 for the reranker)"
            ))),
        }
    }

    /// The name `parse` takes.
    pub fn name(self) -> &'static str {
        match self {
            ModelDType::F32 => "f32",
            ModelDType::F16 => "f16",
            ModelDType::BF16 => "bf16",
            ModelDType::Q8 => "q8",
        }
    }

    pub(crate) fn candle(self) -> DType {
        match self {
            ModelDType::F32 => DType::F32,
            ModelDType::F16 => DType::F16,
            ModelDType::BF16 => DType::BF16,
            ModelDType::Q8 => DType::F32,
        }
    }

    /// Refuses `q8` for a model that has no quantized path (CLIP, BLIP).
    pub(crate) fn unquantized(self, model: &str) -> Result<Self, ModelError> {
        match self {
            ModelDType::Q8 => Err(ModelError::Input(format!(
                "dtype q8 needs the reranker (Qwen3): {model} takes f32, f16 or bf16 (set [models] reranker_dtype = \"q8\" \
                 to quantize the reranker alone)"
            ))),
            other => Ok(other),
        }
    }
}

/// `cpu`, or `cuda:N` (needs the `cuda` feature).
pub fn parse_device(s: &str) -> Result<Device, ModelError> {
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(n) = s.strip_prefix("cuda:").or(if s == "cuda" { Some("0") } else { None }) {
        let n: usize = n
            .parse()
            .map_err(|_| ModelError::Input(format!("bad device `{s}` (expected cpu or cuda:N)")))?;
        // The driver's error, without the backtrace candle attaches to it.
        #[cfg(feature = "cuda")]
        return Device::new_cuda(n).map_err(|e| {
            let e = e.to_string();
            ModelError::Input(format!(
                "cannot open GPU cuda:{n}: {} (is an NVIDIA GPU there, and its driver?)",
                e.lines().next().unwrap_or(&e).trim()
            ))
        });
        #[cfg(not(feature = "cuda"))]
        return Err(ModelError::Input(format!(
            "device cuda:{n} needs a build with `--features cuda`; this one runs on cpu only"
        )));
    }
    Err(ModelError::Input(format!("bad device `{s}` (expected cpu or cuda:N)")))
}

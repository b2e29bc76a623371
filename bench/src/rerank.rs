//! `mira-bench models` (reranker part): Qwen3-Reranker pairs/s on CPU with a Qwen3-0.6B-shaped
//! random-weight model in the Hugging Face layout, loaded through the normal path. Prompts are
//! token ids with the lengths of real ones (a 64-token shared prefix: template, instruction and
//! query; 128-token documents plus the 5-token answer template), so the figures do not depend
//! on the tiny tokenizer. The baseline, measured in the same run on the same weights, is
//! candle-transformers' own Qwen3 forward, one pair at a time.

use std::time::Instant;

use anyhow::Result;
use mira_host::models::{ModelDType, parse_device};
use mira_host::rerank::fixtures::{TinyQwen3, write_qwen3};
use mira_host::rerank::{Reranker, ScoreOptions, p_yes};
use serde::Serialize;

/// Tokens every prompt of a query shares (system turn, instruction, query).
const PREFIX_TOKENS: usize = 64;
/// Tokens of one document, plus the template's closing tokens.
const DOC_TOKENS: usize = 128 + 5;
const DOCS: usize = 8;

#[derive(Serialize)]
pub struct RerankFigures {
    pub shape: &'static str,
    pub prompt: String,
    /// (configuration, pairs/s, ratio to the baseline).
    pub rows: Vec<(String, f64, f64)>,
    /// Largest |difference| of P(yes) from the reference's (they must agree).
    pub max_disagreement: f32,
    /// Largest |difference| of q8's P(yes) from Mira's f32.
    pub q8_max_difference: f32,
    /// Whether q8 orders the documents as f32 does.
    pub q8_same_order: bool,
    /// P(yes) of each document, Mira's f32 and q8 (to read a change of order against the
    /// gap f32 leaves between the two documents).
    pub f32_p_yes: Vec<f32>,
    pub q8_p_yes: Vec<f32>,
    /// Largest |difference| of bf16's P(yes) from Mira's f32.
    pub bf16_max_difference: f32,
    /// The MLP's up projection over 8 prompts' rows (`rows x 1024 -> 3072`) through each
    /// kernel: (kernel, GFLOP/s, multiply-adds counted two).
    pub kernels: Vec<(String, f64)>,
}

/// The reranker's linear layers' arithmetic rate on each kernel this machine runs, on the MLP's
/// up projection over `rows` rows.
fn kernel_rates(rows: usize) -> Result<Vec<(String, f64)>> {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};
    use mira_host::models::linear::Linear;
    let (k, n) = (1024, 3072);
    let w = Tensor::randn(0f32, 0.05, (n, k), &Device::Cpu)?;
    let x = Tensor::randn(0f32, 1.0, (rows, k), &Device::Cpu)?;
    let flops = 2.0 * (rows * n * k) as f64;
    let time = |f: &dyn Fn() -> candle_core::Result<Tensor>| -> Result<f64> {
        f()?;
        let started = Instant::now();
        for _ in 0..5 {
            f()?;
        }
        Ok(5.0 * flops / started.elapsed().as_secs_f64() / 1e9)
    };
    let dense = candle_nn::Linear::new(w.clone(), None);
    let mut out = vec![("candle f32 (gemm crate)".to_string(), time(&|| dense.forward(&x))?)];
    let packed = Linear::new(dense.clone())?;
    if packed.is_packed() {
        out.push(("Mira f32 (packed, AVX-512)".to_string(), time(&|| packed.forward(&x))?));
    }
    let q = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?)?;
    out.push(("candle q8 (GGML Q8_0)".to_string(), time(&|| q.forward(&x))?));
    let ours = Linear::quantized(dense)?;
    let amx = (ours.kernel() == "q8 amx")
        .then(|| time(&|| ours.forward(&x)))
        .transpose()?;
    let vnni = ours.on_vnni();
    if vnni.kernel() == "q8 vnni" {
        out.push(("Mira q8 (AVX-512 VNNI)".to_string(), time(&|| vnni.forward(&x))?));
    }
    if let Some(rate) = amx {
        out.push(("Mira q8 (AMX tiles)".to_string(), rate));
    }
    Ok(out)
}

pub fn run() -> Result<RerankFigures> {
    let dir = std::env::temp_dir().join(format!("mira-bench-qwen3-{}", std::process::id()));
    eprintln!(
        "bench: writing a Qwen3-0.6B-shaped random reranker to {} (2.4 GB)",
        dir.display()
    );
    write_qwen3(&dir, &TinyQwen3::qwen3_06b())?;
    let result = (|| -> Result<RerankFigures> {
        let r = Reranker::load(&dir, &parse_device("cpu")?, ModelDType::F32, 8192)?;
        let prefix: Vec<u32> = (0..PREFIX_TOKENS as u32).map(|i| 300 + i * 7).collect();
        let prompts: Vec<Vec<u32>> = (0..DOCS as u32)
            .map(|d| {
                let mut p = prefix.clone();
                p.extend((0..DOC_TOKENS as u32).map(|i| 5000 + d * 997 + i * 13));
                p
            })
            .collect();
        let configs = [
            (
                "one pair at a time, no prefix reuse",
                ScoreOptions {
                    reuse_prefix: false,
                    batch_size: 1,
                },
            ),
            (
                "batch of 8, no prefix reuse",
                ScoreOptions {
                    reuse_prefix: false,
                    batch_size: 8,
                },
            ),
            (
                "one pair at a time, prefix reused",
                ScoreOptions {
                    reuse_prefix: true,
                    batch_size: 1,
                },
            ),
            (
                "batch of 8, prefix reused (search's default)",
                ScoreOptions {
                    reuse_prefix: true,
                    batch_size: 8,
                },
            ),
        ];
        r.score_ids(&prompts[..2], configs[0].1)?; // warm-up
        let mut rows = Vec::new();
        // Reference: candle-transformers' own Qwen3 (whole-vocabulary logits, no masks, no
        // batching), one pair at a time, on the same weights.
        let reference = {
            use candle_transformers::models::qwen3::{Config, ModelForCausalLM};
            eprintln!("bench: reranker, candle-transformers' Qwen3, one pair at a time");
            let cfg: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
            let vb = r
                .files
                .var_builder(candle_core::DType::F32, &candle_core::Device::Cpu)?;
            let mut model = ModelForCausalLM::new(&cfg, vb)?;
            let started = Instant::now();
            let mut scores = Vec::new();
            for p in &prompts {
                let input = candle_core::Tensor::new(p.as_slice(), &candle_core::Device::Cpu)?.unsqueeze(0)?;
                let logits: Vec<f32> = model.forward(&input, 0)?.flatten_all()?.to_vec1()?;
                model.clear_kv_cache();
                scores.push(p_yes(logits[r.yes_id as usize], logits[r.no_id as usize]));
            }
            let rate = DOCS as f64 / started.elapsed().as_secs_f64();
            rows.push(("candle-transformers qwen3, one pair at a time".to_string(), rate, 1.0));
            scores
        };
        let mut max_disagreement = 0f32;
        let mut f32_scores = Vec::new();
        for (name, opts) in configs {
            eprintln!("bench: reranker, {name}");
            let started = Instant::now();
            let scores = r.score_ids(&prompts, opts)?;
            let rate = DOCS as f64 / started.elapsed().as_secs_f64();
            for (a, b) in reference.iter().zip(&scores) {
                max_disagreement = max_disagreement.max((a - b).abs());
            }
            let base_rate = rows[0].1;
            rows.push((name.to_string(), rate, rate / base_rate));
            f32_scores = scores;
        }
        // int8 weights (quantized at load), search's default options; the ratio is to Mira's
        // own f32 with the same options (the row above).
        eprintln!("bench: reranker, q8, batch of 8, prefix reused");
        let q8 = Reranker::load(&dir, &parse_device("cpu")?, ModelDType::Q8, 8192)?;
        let opts = configs[3].1;
        q8.score_ids(&prompts[..2], opts)?; // warm-up
        let started = Instant::now();
        let scores = q8.score_ids(&prompts, opts)?;
        let rate = DOCS as f64 / started.elapsed().as_secs_f64();
        let q8_max_difference = f32_scores
            .iter()
            .zip(&scores)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let order = |s: &[f32]| {
            let mut i: Vec<usize> = (0..s.len()).collect();
            i.sort_by(|x, y| s[*y].total_cmp(&s[*x]));
            i
        };
        let q8_same_order = order(&f32_scores) == order(&scores);
        let f32_rate = rows.last().map_or(1.0, |r| r.1);
        rows.push((
            "q8 (int8 linears), batch of 8, prefix reused".to_string(),
            rate,
            rate / f32_rate,
        ));
        drop(q8);
        // bf16 weights and activations (the CPU has AVX-512 BF16; candle's CPU matmul decides
        // what it does with them), same options, ratio to f32.
        eprintln!("bench: reranker, bf16, batch of 8, prefix reused");
        let bf16 = Reranker::load(&dir, &parse_device("cpu")?, ModelDType::BF16, 8192)?;
        bf16.score_ids(&prompts[..2], opts)?;
        let started = Instant::now();
        let bf16_scores = bf16.score_ids(&prompts, opts)?;
        let rate = DOCS as f64 / started.elapsed().as_secs_f64();
        let bf16_max_difference = f32_scores
            .iter()
            .zip(&bf16_scores)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        rows.push(("bf16, batch of 8, prefix reused".to_string(), rate, rate / f32_rate));
        drop(bf16);
        let kernels = kernel_rates(DOCS * DOC_TOKENS)?;
        Ok(RerankFigures {
            shape: "Qwen3-0.6B (28 layers, 1024 wide, 16/8 heads of 128, 151669-token tied embedding), f32, cpu",
            prompt: format!("{DOCS} documents of {DOC_TOKENS} tokens after a {PREFIX_TOKENS}-token shared prefix"),
            rows,
            max_disagreement,
            q8_max_difference,
            q8_same_order,
            f32_p_yes: f32_scores.clone(),
            q8_p_yes: scores.clone(),
            bf16_max_difference,
            kernels,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub fn print(f: &RerankFigures) {
    println!("Qwen3-Reranker, {}:", f.shape);
    println!("  {}", f.prompt);
    for (name, rate, ratio) in &f.rows {
        println!("  {name:<46} {rate:>6.2} pairs/s  {ratio:.2}x");
    }
    println!(
        "  largest P(yes) difference from candle-transformers' forward: {:.2e}",
        f.max_disagreement
    );
    println!(
        "  largest P(yes) difference of q8 from Mira's f32: {:.2e}, {} order (the q8 row's ratio is to the f32 row above it)",
        f.q8_max_difference,
        if f.q8_same_order { "the same" } else { "a different" }
    );
    let list = |v: &[f32]| v.iter().map(|p| format!("{p:.3}")).collect::<Vec<_>>().join(" ");
    println!("    P(yes) f32: {}", list(&f.f32_p_yes));
    println!("    P(yes) q8:  {}", list(&f.q8_p_yes));
    println!(
        "  largest P(yes) difference of bf16 from Mira's f32: {:.2e} (its ratio is to the same f32 row)",
        f.bf16_max_difference
    );
    println!(
        "  the MLP's up projection ({} rows x 1024 -> 3072) by kernel:",
        DOCS * DOC_TOKENS
    );
    for (name, rate) in &f.kernels {
        println!("    {name:<30} {rate:>6.0} GFLOP/s");
    }
}

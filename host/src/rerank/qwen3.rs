//! Qwen3's decoder on candle-nn ops, written for scoring rather than generation: right-padded
//! batches read at each row's own last token, a shared prefix whose keys and values are computed
//! once and reused by every row, and output rows limited to the tokens the caller asks for.
//!
//! Weight names follow transformers' `Qwen3ForCausalLM` (`model.embed_tokens`, `model.layers.N.*`,
//! `model.norm`, `lm_head` unless tied), so Hugging Face checkpoints load as they are.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::models::linear::Linear;
use crate::models::rms_norm::RmsNorm;
use crate::models::rotary_attention::{self, HeadPrep, RowShape};

use super::Qwen3Config;

/// Keys and values of a shared prefix, per layer: `(1, kv_heads, len, head_dim)` each.
pub struct KvPrefix {
    layers: Vec<(Tensor, Tensor)>,
    pub len: usize,
}

struct Attention {
    /// The query, key and value projections as one product (one pass over the input).
    qkv: Linear,
    o: Linear,
    /// Per-head norms: applied by [`rotary_attention`] itself where it runs.
    q_norm: RmsNorm,
    k_norm: RmsNorm,
}

struct Layer {
    attn: Attention,
    input_norm: RmsNorm,
    post_norm: RmsNorm,
    /// `silu(gate_proj(x)) * up_proj(x)`, one product with the activation in its epilogue.
    gate_up: Linear,
    down: Linear,
}

/// The rotary angles' cosines and sines for a forward's positions: plain values for
/// [`rotary_attention`], tensors for candle's `rope`.
enum Rotary {
    Values(Vec<f32>, Vec<f32>),
    Tensors(Tensor, Tensor),
}

/// A loaded Qwen3 decoder.
pub struct Qwen3 {
    embed: candle_nn::Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// The output projection (`lm_head.weight`, or the embeddings when tied): `(vocab, hidden)`.
    lm_head: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rope_theta: f64,
    pub max_positions: usize,
    device: Device,
    dtype: DType,
}

/// A linear layer from the checkpoint; with `q8`, quantized as soon as it is read (so the f32
/// weights of one layer at a time are in memory, never the whole model's).
fn linear(i: usize, o: usize, bias: bool, q8: bool, vb: VarBuilder) -> candle_core::Result<Linear> {
    let l = candle_nn::linear_b(i, o, bias, vb)?;
    if q8 { Linear::quantized(l) } else { Linear::new(l) }
}

/// Layers `names` under `vb` (each `i -> o`) as one product, as [`linear`] reads them.
fn stacked(i: usize, layers: &[(usize, &str)], bias: bool, q8: bool, vb: &VarBuilder) -> candle_core::Result<Linear> {
    let layers = layers
        .iter()
        .map(|&(o, name)| candle_nn::linear_b(i, o, bias, vb.pp(name)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Linear::stacked(&layers, q8)
}

fn rms(n: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<RmsNorm> {
    RmsNorm::load(n, eps, vb)
}

impl Qwen3 {
    /// Builds the decoder from weights named as in transformers.
    /// With `q8`, the linear layers are int8 (see [`crate::models::ModelDType::Q8`]).
    pub fn new(cfg: &Qwen3Config, vb: VarBuilder, q8: bool) -> candle_core::Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim());
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.kv_heads());
        let eps = cfg.rms_norm_eps;
        let m = vb.pp("model");
        let embed = candle_nn::embedding(cfg.vocab_size, h, m.pp("embed_tokens"))?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp("layers").pp(i);
            let a = l.pp("self_attn");
            let b = cfg.attention_bias;
            layers.push(Layer {
                attn: Attention {
                    qkv: stacked(
                        h,
                        &[
                            (heads * d, "q_proj"),
                            (kv_heads * d, "k_proj"),
                            (kv_heads * d, "v_proj"),
                        ],
                        b,
                        q8,
                        &a,
                    )?,
                    o: linear(heads * d, h, b, q8, a.pp("o_proj"))?,
                    q_norm: rms(d, eps, a.pp("q_norm"))?,
                    k_norm: rms(d, eps, a.pp("k_norm"))?,
                },
                input_norm: rms(h, eps, l.pp("input_layernorm"))?,
                post_norm: rms(h, eps, l.pp("post_attention_layernorm"))?,
                gate_up: Linear::gated(
                    candle_nn::linear_b(h, cfg.intermediate_size, false, l.pp("mlp").pp("gate_proj"))?,
                    candle_nn::linear_b(h, cfg.intermediate_size, false, l.pp("mlp").pp("up_proj"))?,
                    q8,
                )?,
                down: linear(cfg.intermediate_size, h, false, q8, l.pp("mlp").pp("down_proj"))?,
            });
        }
        let norm = rms(h, eps, m.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
            embed.embeddings().clone()
        } else {
            vb.pp("lm_head").get((cfg.vocab_size, h), "weight")?
        };
        Ok(Qwen3 {
            embed,
            layers,
            norm,
            lm_head,
            heads,
            kv_heads,
            head_dim: d,
            rope_theta: cfg.rope_theta,
            max_positions: cfg.max_position_embeddings,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// Where the weights live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The output projection's rows for `tokens`: `(tokens, hidden)`. Scoring multiplies only by
    /// these instead of the whole vocabulary.
    pub fn head_rows(&self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let ids = Tensor::new(tokens, &self.device)?;
        self.lm_head.index_select(&ids, 0)?.contiguous()
    }

    /// Keys and values of `ids` as a prefix shared by later rows.
    pub fn prefix(&self, ids: &[u32]) -> candle_core::Result<KvPrefix> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let mut kv = Vec::with_capacity(self.layers.len());
        self.run(&input, None, Some(&mut kv), None)?;
        Ok(KvPrefix {
            layers: kv,
            len: ids.len(),
        })
    }

    /// Logits of `head` (from [`Qwen3::head_rows`]) at the last token of each row, the rows
    /// continuing `prefix` when given: `rows.len() x head_rows`. Rows are right-padded together;
    /// causal attention keeps padding out of every real token, so each row gets what it would
    /// get alone.
    pub fn last_token_logits(
        &self,
        prefix: Option<&KvPrefix>,
        rows: &[&[u32]],
        head: &Tensor,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        if rows.iter().any(|r| r.is_empty()) {
            candle_core::bail!("every row needs at least one token");
        }
        let mut flat = Vec::with_capacity(rows.len() * len);
        for r in rows {
            flat.extend_from_slice(r);
            flat.extend(std::iter::repeat_n(0u32, len - r.len()));
        }
        let input = Tensor::from_vec(flat, (rows.len(), len), &self.device)?;
        let last: Vec<u32> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i * len + r.len() - 1) as u32)
            .collect();
        let hidden = self.run(&input, prefix, None, Some(&Tensor::new(last, &self.device)?))?;
        let last = self.norm.forward(&hidden)?;
        last.matmul(&head.t()?)?.to_dtype(DType::F32)?.to_vec2()
    }

    /// The rotary frequencies: `head_dim / 2`.
    fn inverse_frequencies(&self) -> Vec<f32> {
        let half = self.head_dim / 2;
        (0..half)
            .map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / self.head_dim as f64) as f32)
            .collect()
    }

    /// Rotary tables for positions `start..start + len`: `(len, head_dim / 2)` each.
    fn rope_tables(&self, start: usize, len: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.head_dim / 2;
        let inv = Tensor::from_vec(self.inverse_frequencies(), (1, half), &self.device)?;
        let pos = Tensor::arange(start as u32, (start + len) as u32, &self.device)?
            .to_dtype(DType::F32)?
            .reshape((len, 1))?;
        let freqs = pos.matmul(&inv)?;
        Ok((freqs.cos()?.to_dtype(self.dtype)?, freqs.sin()?.to_dtype(self.dtype)?))
    }

    /// [`Qwen3::rope_tables`] as plain values (`len x head_dim / 2` each), the same angles.
    fn rope_values(&self, start: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let inv = self.inverse_frequencies();
        let angles: Vec<f32> = (start..start + len)
            .flat_map(|p| inv.iter().map(move |f| p as f32 * f))
            .collect();
        (
            angles.iter().map(|a| a.cos()).collect(),
            angles.iter().map(|a| a.sin()).collect(),
        )
    }

    /// Runs the decoder layers over `input` (`batch x len` ids) after `prefix`; returns the last
    /// layer's hidden states (before the final norm), `(batch, len, width)`, or with `pool`
    /// (indexes into the `batch x len` positions) those rows alone, `(rows, width)`: the last
    /// layer's output projection and MLP then run on them only. With `keep`, each layer's keys
    /// and values are pushed there.
    fn run(
        &self,
        input: &Tensor,
        prefix: Option<&KvPrefix>,
        mut keep: Option<&mut Vec<(Tensor, Tensor)>>,
        pool: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, l) = input.dims2()?;
        let past = prefix.map_or(0, |p| p.len);
        if past + l > self.max_positions {
            candle_core::bail!(
                "{} tokens exceed the model's {} positions",
                past + l,
                self.max_positions
            );
        }
        // On an AVX-512 CPU in f32, attention takes the projections' rows as they are and
        // applies the head norms and rotary itself; elsewhere candle's ops do each step.
        let rotary = if rotary_attention::available(&self.device, self.dtype) {
            let (cos, sin) = self.rope_values(past, l);
            Rotary::Values(cos, sin)
        } else {
            let (cos, sin) = self.rope_tables(past, l)?;
            Rotary::Tensors(cos, sin)
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // Each residual add runs fused with the norm after it (`x` the residual stream, `h` its
        // normed input to the next block).
        let mut x = self.embed.forward(input)?;
        let mut h = match self.layers.first() {
            Some(first) => first.input_norm.forward(&x)?,
            None => x.clone(),
        };
        for (n, layer) in self.layers.iter().enumerate() {
            let a = &layer.attn;
            let prefix = prefix.map(|p| (&p.layers[n].0, &p.layers[n].1));
            let mut ctx = match &rotary {
                Rotary::Values(cos, sin) => {
                    let width = h.dim(2)?;
                    let [q, k, v]: [Tensor; 3] = a
                        .qkv
                        .forward_parts(&h.reshape((b * l, width))?)?
                        .try_into()
                        .expect("three layers stacked");
                    let prep = HeadPrep {
                        q_norm: a.q_norm.weights(),
                        k_norm: a.k_norm.weights(),
                        eps: a.q_norm.eps(),
                        cos,
                        sin,
                    };
                    let shape = RowShape {
                        batch: b,
                        len: l,
                        heads: self.heads,
                        kv_heads: self.kv_heads,
                        head_dim: self.head_dim,
                    };
                    let (ctx, kept) =
                        rotary_attention::attend(&q, &k, &v, shape, prefix, &prep, scale as f32, keep.is_some())?;
                    if let (Some(keep), Some(kv)) = (keep.as_deref_mut(), kept) {
                        keep.push(kv);
                    }
                    ctx.reshape((b, l, self.heads * self.head_dim))?
                }
                Rotary::Tensors(cos, sin) => {
                    let heads_of = |t: Tensor, n: usize| t.reshape((b, l, n, self.head_dim));
                    let [q, k, v]: [Tensor; 3] = a.qkv.forward_parts(&h)?.try_into().expect("three layers stacked");
                    let q = a.q_norm.forward(&heads_of(q, self.heads)?)?;
                    let k = a.k_norm.forward(&heads_of(k, self.kv_heads)?)?;
                    let v = heads_of(v, self.kv_heads)?;
                    let (q, k, v) = (
                        q.transpose(1, 2)?.contiguous()?,
                        k.transpose(1, 2)?.contiguous()?,
                        v.transpose(1, 2)?.contiguous()?,
                    );
                    let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
                    let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
                    if let Some(keep) = keep.as_deref_mut() {
                        keep.push((k.clone(), v.clone()));
                    }
                    crate::models::attention::attention(&q, &k, &v, prefix, scale, true)?
                        .transpose(1, 2)?
                        .reshape((b, l, self.heads * self.head_dim))?
                }
            };
            if let Some(rows) = pool.filter(|_| n + 1 == self.layers.len()) {
                let width = x.dim(2)?;
                x = x.reshape((b * l, width))?.index_select(rows, 0)?;
                ctx = ctx
                    .reshape((b * l, self.heads * self.head_dim))?
                    .index_select(rows, 0)?;
            }
            let (sum, normed) = layer.post_norm.add_forward(&x, &a.o.forward(&ctx)?)?;
            let mlp = layer.down.forward(&layer.gate_up.forward(&normed)?)?;
            match self.layers.get(n + 1) {
                Some(next) => (x, h) = next.input_norm.add_forward(&sum, &mlp)?,
                None => x = (sum + mlp)?,
            }
        }
        Ok(x)
    }
}

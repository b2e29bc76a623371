//! CLIP's two transformers (transformers' `CLIPTextTransformer` and `CLIPVisionTransformer`,
//! weights named as there) on Mira's linear layers ([`crate::models::linear`]): on a CPU with
//! AVX-512 the projections and MLPs run on weights packed at load, the query, key and value
//! projections fused into one product. The patch embedding, a convolution whose stride is its
//! kernel, is the same product over the image's patches.
//!
//! Sequences run packed: a batch is one `(tokens, width)` matrix, the texts' (or images')
//! tokens side by side, and only attention sees where one ends ([`attention::packed`]). A batch
//! of texts costs its tokens, not its length times the longest (a third less for texts of 6 to
//! 17 tokens). The last layer's output projection and MLP run on the pooled rows alone.

use candle_core::{Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig};
use candle_transformers::models::clip::vision_model::ClipVisionConfig;

use crate::models::attention;
use crate::models::linear::{self, Linear};

const LAYER_NORM_EPS: f64 = 1e-5;

fn layer_norm(n: usize, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(n, LAYER_NORM_EPS, vb)
}

/// The attention's three input projections as one `(3 x width) x width` layer.
fn fused_qkv(width: usize, vb: &VarBuilder) -> candle_core::Result<Linear> {
    let part = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
        let p = vb.pp(name);
        Ok((p.get((width, width), "weight")?, p.get(width, "bias")?))
    };
    let (q, k, v) = (part("q_proj")?, part("k_proj")?, part("v_proj")?);
    let weight = Tensor::cat(&[&q.0, &k.0, &v.0], 0)?;
    let bias = Tensor::cat(&[&q.1, &k.1, &v.1], 0)?;
    Linear::new(candle_nn::Linear::new(weight, Some(bias)))
}

struct EncoderLayer {
    qkv: Linear,
    out: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The transformer layers both towers share.
struct Encoder {
    layers: Vec<EncoderLayer>,
    heads: usize,
    activation: linear::Activation,
}

impl Encoder {
    fn new(
        vb: VarBuilder,
        width: usize,
        ff: usize,
        layers: usize,
        heads: usize,
        activation: Activation,
    ) -> candle_core::Result<Self> {
        let layers = (0..layers)
            .map(|i| {
                let l = vb.pp("layers").pp(i);
                let a = l.pp("self_attn");
                Ok(EncoderLayer {
                    qkv: fused_qkv(width, &a)?,
                    out: Linear::load(width, width, true, a.pp("out_proj"))?,
                    norm1: layer_norm(width, l.pp("layer_norm1"))?,
                    norm2: layer_norm(width, l.pp("layer_norm2"))?,
                    fc1: Linear::load(width, ff, true, l.pp("mlp").pp("fc1"))?,
                    fc2: Linear::load(ff, width, true, l.pp("mlp").pp("fc2"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        let activation = match activation {
            Activation::QuickGelu => linear::Activation::QuickGelu,
        };
        Ok(Encoder {
            layers,
            heads,
            activation,
        })
    }

    /// `x`: `(rows, width)`, sequences of `lens` rows side by side, each attending to itself
    /// only (with `causal`, token `i` to its tokens `..=i`). Returns the final layer's states of
    /// the rows `keep` lists: the last layer's output projection and MLP run on those rows alone
    /// (the pooled tokens are all the towers read).
    fn forward(&self, x: &Tensor, lens: &[usize], causal: bool, keep: &Tensor) -> candle_core::Result<Tensor> {
        if self.layers.is_empty() {
            return x.index_select(keep, 0);
        }
        let width = x.dim(1)?;
        let scale = ((width / self.heads) as f64).powf(-0.5);
        let mut x = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let qkv = l.qkv.forward(&l.norm1.forward(&x)?)?;
            let mut ctx = attention::packed(&qkv, self.heads, lens, scale, causal)?;
            if i + 1 == self.layers.len() {
                x = x.index_select(keep, 0)?;
                ctx = ctx.index_select(keep, 0)?;
            }
            x = (x + l.out.forward(&ctx)?)?;
            let h = l.fc1.forward_activated(&l.norm2.forward(&x)?, Some(self.activation))?;
            x = (x + l.fc2.forward(&h)?)?;
        }
        Ok(x)
    }
}

/// Row indexes (`u32`, on `device`) of `rows`.
fn row_index(rows: impl IntoIterator<Item = usize>, device: &Device) -> candle_core::Result<Tensor> {
    Tensor::new(rows.into_iter().map(|r| r as u32).collect::<Vec<_>>(), device)
}

/// The text transformer: token and position embeddings, causal layers, the final norm.
pub struct TextTower {
    tokens: Embedding,
    positions: Tensor,
    encoder: Encoder,
    final_norm: LayerNorm,
}

impl TextTower {
    /// `vb` at `text_model`.
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> candle_core::Result<Self> {
        let e = vb.pp("embeddings");
        Ok(TextTower {
            tokens: candle_nn::embedding(c.vocab_size, c.embed_dim, e.pp("token_embedding"))?,
            positions: e
                .pp("position_embedding")
                .get((c.max_position_embeddings, c.embed_dim), "weight")?,
            encoder: Encoder::new(
                vb.pp("encoder"),
                c.embed_dim,
                c.intermediate_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.activation,
            )?,
            final_norm: layer_norm(c.embed_dim, vb.pp("final_layer_norm"))?,
        })
    }

    /// The final norm's state at token `pool[i]` of each text `ids[i]` (token ids, none past the
    /// model's positions): `(texts, width)`. The texts run packed, none padded to another's
    /// length, each attending causally to itself.
    pub fn forward(&self, ids: &[Vec<u32>], pool: &[usize]) -> candle_core::Result<Tensor> {
        let max = self.positions.dim(0)?;
        if let Some(long) = ids.iter().find(|t| t.len() > max) {
            candle_core::bail!("{} tokens exceed the text model's {max} positions", long.len());
        }
        if pool.len() != ids.len() || ids.iter().zip(pool).any(|(t, p)| *p >= t.len()) {
            candle_core::bail!("a pooled token outside its text");
        }
        let device = self.positions.device();
        let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
        let flat = Tensor::new(ids.concat(), device)?;
        let positions = row_index(lens.iter().flat_map(|l| 0..*l), device)?;
        let starts = attention::starts(&lens);
        let keep = row_index(starts.iter().zip(pool).map(|(s, p)| s + p), device)?;
        let x = (self.tokens.forward(&flat)? + self.positions.index_select(&positions, 0)?)?;
        self.final_norm.forward(&self.encoder.forward(&x, &lens, true, &keep)?)
    }
}

/// The vision transformer: patch and class embeddings, positions, the pre-norm, the layers and
/// the class token's post-norm.
pub struct VisionTower {
    patch: Linear,
    class: Tensor,
    positions: Tensor,
    pre_norm: LayerNorm,
    encoder: Encoder,
    post_norm: LayerNorm,
    patch_size: usize,
    channels: usize,
}

impl VisionTower {
    /// `vb` at `vision_model`.
    pub fn new(vb: VarBuilder, c: &ClipVisionConfig) -> candle_core::Result<Self> {
        let e = vb.pp("embeddings");
        let (p, ch, d) = (c.patch_size, c.num_channels, c.embed_dim);
        let conv = e.pp("patch_embedding").get((d, ch, p, p), "weight")?;
        let patch = Linear::new(candle_nn::Linear::new(conv.reshape((d, ch * p * p))?, None))?;
        let positions = (c.image_size / p).pow(2) + 1;
        Ok(VisionTower {
            patch,
            class: e.get(d, "class_embedding")?,
            positions: e.pp("position_embedding").get((positions, d), "weight")?,
            pre_norm: layer_norm(d, vb.pp("pre_layrnorm"))?,
            encoder: Encoder::new(
                vb.pp("encoder"),
                d,
                c.intermediate_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.activation,
            )?,
            post_norm: layer_norm(d, vb.pp("post_layernorm"))?,
            patch_size: p,
            channels: ch,
        })
    }

    /// The class token's state after the post-norm, `(batch, width)`, of `(batch, channels,
    /// h, w)` pixels.
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (b, ch, h, w) = pixels.dims4()?;
        let p = self.patch_size;
        let (gh, gw) = (h / p, w / p);
        if ch != self.channels || gh * gw + 1 != self.positions.dim(0)? || h % p != 0 || w % p != 0 {
            candle_core::bail!("pixels of shape {:?} do not fit the vision model", pixels.dims());
        }
        // (b, c, gh, p, gw, p) -> (b, gh, gw, c, p, p): each patch's values in the kernel's order
        let patches = pixels
            .reshape((b * ch, gh, p, gw, p))?
            .transpose(2, 3)?
            .reshape((b, ch, gh * gw, p * p))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, gh * gw, ch * p * p))?;
        let d = self.class.dim(0)?;
        let patches = self.patch.forward(&patches)?;
        let class = self.class.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
        let x = Tensor::cat(&[&class.to_dtype(patches.dtype())?, &patches], 1)?.broadcast_add(&self.positions)?;
        let tokens = gh * gw + 1;
        let x = self.pre_norm.forward(&x)?.reshape((b * tokens, d))?;
        // Each image's class token, the first of its rows.
        let keep = row_index((0..b).map(|i| i * tokens), pixels.device())?;
        let x = self.encoder.forward(&x, &vec![tokens; b], false, &keep)?;
        self.post_norm.forward(&x)
    }
}

//! Mira's own BLIP forward for captioning, on candle-nn ops, reading the Hugging Face weight
//! names of `BlipForConditionalGeneration`. candle-transformers' BLIP takes one image at a time
//! in its text decoder and recomputes the cross-attention keys and values of all the image's
//! patches at every generated token (577 patches x 12 layers for the base model: most of a
//! caption's arithmetic). Here the decoder takes a batch of images that decode in step (all
//! start from the same token, so no padding or masks between rows), and each image's
//! cross-attention keys and values are computed once per caption.

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Activation, Conv2d, Conv2dConfig, Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::blip::{Config, VisionConfig};
use candle_transformers::models::blip_text::Config as TextConfig;

struct VisionLayer {
    norm1: LayerNorm,
    qkv: Linear,
    projection: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The ViT image encoder: the last hidden state of every patch (and the class token).
struct Vision {
    class_embedding: Tensor,
    patch_embedding: Conv2d,
    position_embedding: Tensor,
    layers: Vec<VisionLayer>,
    post_norm: LayerNorm,
    heads: usize,
    act: Activation,
}

impl Vision {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let patches = (cfg.image_size / cfg.patch_size).pow(2);
        let conv = Conv2dConfig {
            stride: cfg.patch_size,
            ..Default::default()
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp("encoder.layers").pp(i);
                Ok(VisionLayer {
                    norm1: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
                    qkv: candle_nn::linear(d, 3 * d, vb.pp("self_attn.qkv"))?,
                    projection: candle_nn::linear(d, d, vb.pp("self_attn.projection"))?,
                    norm2: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
                    fc1: candle_nn::linear(d, cfg.intermediate_size, vb.pp("mlp.fc1"))?,
                    fc2: candle_nn::linear(cfg.intermediate_size, d, vb.pp("mlp.fc2"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Vision {
            class_embedding: emb.get((1, 1, d), "class_embedding")?,
            patch_embedding: candle_nn::conv2d(3, d, cfg.patch_size, conv, emb.pp("patch_embedding"))?,
            position_embedding: emb.get((1, patches + 1, d), "position_embedding")?,
            layers,
            post_norm: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
        })
    }

    /// (batch, 3, size, size) pixels to (batch, patches + 1, hidden).
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let b = pixels.dim(0)?;
        let patches = self.patch_embedding.forward(pixels)?.flatten_from(2)?.transpose(1, 2)?;
        let d = patches.dim(2)?;
        let class = self
            .class_embedding
            .broadcast_as((b, 1, d))?
            .to_dtype(patches.dtype())?;
        let mut xs = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        for layer in &self.layers {
            let (b, n, d) = xs.dims3()?;
            let hd = d / self.heads;
            let qkv = layer
                .qkv
                .forward(&layer.norm1.forward(&xs)?)?
                .reshape((b, n, 3, self.heads, hd))?
                .permute((2, 0, 3, 1, 4))?;
            let (q, k, v) = (
                qkv.get(0)?.contiguous()?,
                qkv.get(1)?.contiguous()?,
                qkv.get(2)?.contiguous()?,
            );
            let attended = attend(&q, &k, &v, None)?;
            xs = (layer.projection.forward(&attended)? + &xs)?;
            let mlp = layer
                .fc2
                .forward(&self.act.forward(&layer.fc1.forward(&layer.norm2.forward(&xs)?)?)?)?;
            xs = (mlp + &xs)?;
        }
        self.post_norm.forward(&xs)
    }
}

/// Softmax attention of (b, heads, q, hd) queries over (b, heads, k, hd) keys and values, with
/// an additive mask broadcast over (q, k); the result as (b, q, heads x hd).
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    candle_nn::ops::softmax_last_dim(&scores)?
        .matmul(v)?
        .transpose(1, 2)?
        .flatten_from(D::Minus2)
}

/// One attention block of the text decoder (`self` and `output` in the weight names).
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    norm: LayerNorm,
}

impl Attention {
    fn new(cfg: &TextConfig, kv_size: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        Ok(Attention {
            query: candle_nn::linear(d, d, vb.pp("self.query"))?,
            key: candle_nn::linear(kv_size, d, vb.pp("self.key"))?,
            value: candle_nn::linear(kv_size, d, vb.pp("self.value"))?,
            dense: candle_nn::linear(d, d, vb.pp("output.dense"))?,
            norm: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }
}

struct DecoderLayer {
    attention: Attention,
    cross: Attention,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// What one batch of captions carries from token to token: per layer, the self-attention keys
/// and values so far and the images' cross-attention keys and values (computed once).
pub(super) struct Decoding {
    self_kv: Vec<Option<(Tensor, Tensor)>>,
    cross_kv: Vec<(Tensor, Tensor)>,
    position: usize,
}

/// The BERT-style text decoder with its language-model head.
struct Decoder {
    word_embeddings: Embedding,
    position_embeddings: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<DecoderLayer>,
    head_dense: Linear,
    head_norm: LayerNorm,
    head_out: Linear,
    heads: usize,
    act: Activation,
}

impl Decoder {
    fn new(cfg: &TextConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let bert = vb.pp("bert");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let vb = bert.pp("encoder.layer").pp(i);
                Ok(DecoderLayer {
                    attention: Attention::new(cfg, d, vb.pp("attention"))?,
                    cross: Attention::new(cfg, cfg.encoder_hidden_size, vb.pp("crossattention"))?,
                    intermediate: candle_nn::linear(d, cfg.intermediate_size, vb.pp("intermediate.dense"))?,
                    output: candle_nn::linear(cfg.intermediate_size, d, vb.pp("output.dense"))?,
                    output_norm: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        let head = vb.pp("cls.predictions");
        let emb = bert.pp("embeddings");
        Ok(Decoder {
            word_embeddings: candle_nn::embedding(cfg.vocab_size, d, emb.pp("word_embeddings"))?,
            position_embeddings: emb.get((cfg.max_position_embeddings, d), "position_embeddings.weight")?,
            embedding_norm: candle_nn::layer_norm(d, cfg.layer_norm_eps, emb.pp("LayerNorm"))?,
            layers,
            head_dense: candle_nn::linear(d, d, head.pp("transform.dense"))?,
            head_norm: candle_nn::layer_norm(d, cfg.layer_norm_eps, head.pp("transform.LayerNorm"))?,
            head_out: Linear::new(
                head.get((cfg.vocab_size, d), "decoder.weight")?,
                Some(head.get(cfg.vocab_size, "bias")?),
            ),
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
        })
    }

    /// (b, n, d) to (b, heads, n, d / heads).
    fn split_heads(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = xs.dims3()?;
        xs.reshape((b, n, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn start(&self, image_embeds: &Tensor) -> candle_core::Result<Decoding> {
        let cross_kv = self
            .layers
            .iter()
            .map(|l| {
                Ok((
                    self.split_heads(&l.cross.key.forward(image_embeds)?)?,
                    self.split_heads(&l.cross.value.forward(image_embeds)?)?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Decoding {
            self_kv: vec![None; self.layers.len()],
            cross_kv,
            position: 0,
        })
    }

    /// Feeds (b, s) tokens; the logits after the last one, (b, vocab).
    fn step(&self, state: &mut Decoding, ids: &Tensor) -> candle_core::Result<Tensor> {
        let s = ids.dim(1)?;
        let positions = self.position_embeddings.narrow(0, state.position, s)?;
        let mut xs = self
            .embedding_norm
            .forward(&self.word_embeddings.forward(ids)?.broadcast_add(&positions)?)?;
        // New tokens see every earlier token and themselves.
        let mask = (s > 1)
            .then(|| {
                let past = state.position;
                let m: Vec<f32> = (0..s)
                    .flat_map(|i| (0..past + s).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
                    .collect();
                Tensor::from_vec(m, (s, past + s), ids.device())?.to_dtype(xs.dtype())
            })
            .transpose()?;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = &layer.attention;
            let (q, mut k, mut v) = (
                self.split_heads(&a.query.forward(&xs)?)?,
                self.split_heads(&a.key.forward(&xs)?)?,
                self.split_heads(&a.value.forward(&xs)?)?,
            );
            if let Some((pk, pv)) = &state.self_kv[i] {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            let attended = attend(&q, &k, &v, mask.as_ref())?;
            state.self_kv[i] = Some((k, v));
            xs = a.norm.forward(&(a.dense.forward(&attended)? + &xs)?)?;
            let c = &layer.cross;
            let (ck, cv) = &state.cross_kv[i];
            let attended = attend(&self.split_heads(&c.query.forward(&xs)?)?, ck, cv, None)?;
            xs = c.norm.forward(&(c.dense.forward(&attended)? + &xs)?)?;
            let mlp = layer
                .output
                .forward(&self.act.forward(&layer.intermediate.forward(&xs)?)?)?;
            xs = layer.output_norm.forward(&(mlp + &xs)?)?;
        }
        state.position += s;
        let last = xs.i((.., s - 1, ..))?;
        let hidden = self
            .head_norm
            .forward(&self.act.forward(&self.head_dense.forward(&last)?)?)?;
        self.head_out.forward(&hidden)
    }
}

/// A BLIP captioning model: image encoder and text decoder.
pub(super) struct Blip {
    vision: Vision,
    decoder: Decoder,
}

impl Blip {
    pub fn new(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Blip {
            vision: Vision::new(&cfg.vision_config, vb.pp("vision_model"))?,
            decoder: Decoder::new(&cfg.text_config, vb.pp("text_decoder"))?,
        })
    }

    /// Greedy captions of a batch of preprocessed images: token ids without the start and end
    /// tokens, at most `max_tokens` each.
    pub fn generate(
        &self,
        pixels: &Tensor,
        bos: u32,
        sep: u32,
        max_tokens: usize,
    ) -> candle_core::Result<Vec<Vec<u32>>> {
        let b = pixels.dim(0)?;
        let image_embeds = self.vision.forward(pixels)?;
        let mut state = self.decoder.start(&image_embeds)?;
        let mut captions = vec![Vec::new(); b];
        let mut done = vec![false; b];
        let mut ids = Tensor::full(bos, (b, 1), pixels.device())?;
        for _ in 0..max_tokens {
            let next: Vec<u32> = self
                .decoder
                .step(&mut state, &ids)?
                .to_dtype(DType::F32)?
                .argmax(D::Minus1)?
                .to_vec1()?;
            for (i, &token) in next.iter().enumerate() {
                if done[i] {
                    continue;
                }
                if token == sep {
                    done[i] = true;
                } else {
                    captions[i].push(token);
                }
            }
            if done.iter().all(|d| *d) {
                break;
            }
            ids = Tensor::from_vec(next, (b, 1), &Device::Cpu)?.to_device(pixels.device())?;
        }
        Ok(captions)
    }
}

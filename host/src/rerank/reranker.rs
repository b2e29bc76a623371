//! Qwen3-Reranker: P("yes") for (instruction, query, document), batched, with the KV of the
//! part every candidate shares computed once.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use super::batcher::{SharedBatches, SharedRun, SharedWindow};
use super::prompt::PromptTokenizer;
use super::{Qwen3, Qwen3Config};
use crate::models::{ModelDType, ModelError, ModelFiles, ModelKind};

/// The model card's default context for the reranker.
pub const DEFAULT_MAX_LENGTH: usize = 8192;

/// How a set of documents is scored; the defaults are what search uses.
#[derive(Debug, Clone, Copy)]
pub struct ScoreOptions {
    /// Compute the keys and values of the tokens all prompts share once (exact: the results
    /// equal scoring without it).
    pub reuse_prefix: bool,
    /// Documents per forward pass (sorted by length first, so batches waste little padding).
    pub batch_size: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            reuse_prefix: true,
            batch_size: 8,
        }
    }
}

/// A loaded Qwen3-Reranker.
pub struct Reranker {
    model: Qwen3,
    prompt: PromptTokenizer,
    /// The output projection rows of "yes" and "no".
    head: Tensor,
    pub yes_id: u32,
    pub no_id: u32,
    pub config: Qwen3Config,
    pub files: ModelFiles,
    /// Concurrent queries' prompts gathered into shared forward passes.
    shared: SharedBatches,
}

fn token_id(tok: &Tokenizer, token: &str, file: &str) -> Result<u32, ModelError> {
    tok.token_to_id(token).ok_or_else(|| ModelError::Config {
        file: file.into(),
        message: format!("the tokenizer has no token `{token}`, which the reranker's answer is read from"),
    })
}

impl Reranker {
    /// Loads a model directory in the Hugging Face layout; prompts are cut to `max_length` tokens.
    pub fn load(dir: &Path, device: &Device, dtype: ModelDType, max_length: usize) -> Result<Self, ModelError> {
        let files = ModelFiles::find(dir, ModelKind::Reranker)?;
        let config = Qwen3Config::from_file(&files.config)?;
        let tok_file = files.tokenizer.display().to_string();
        let tokenizer = files.tokenizer()?;
        let yes_id = token_id(&tokenizer, "yes", &tok_file)?;
        let no_id = token_id(&tokenizer, "no", &tok_file)?;
        for id in [yes_id, no_id] {
            if id as usize >= config.vocab_size {
                return Err(ModelError::Config {
                    file: tok_file,
                    message: format!(
                        "token id {id} is outside the model's vocabulary of {}",
                        config.vocab_size
                    ),
                });
            }
        }
        let max_length = max_length.min(config.max_position_embeddings);
        let prompt = PromptTokenizer::new(tokenizer, max_length)?;
        if device.is_cpu()
            && let Some(available) = crate::models::memory::available()
        {
            let params = crate::models::memory::parameters(&files.weights)?;
            let embeddings = (config.vocab_size * config.hidden_size) as u64;
            let dense = if config.tie_word_embeddings {
                embeddings
            } else {
                2 * embeddings
            };
            crate::models::memory::check_fits(
                &format!("the reranker in {}", files.dir.display()),
                params,
                dense,
                dtype,
                available,
                "set [models] reranker_dtype (or --dtype)",
            )?;
        }
        let vb = files.var_builder(dtype.candle(), device)?;
        let model = Qwen3::new(&config, vb, dtype == ModelDType::Q8).map_err(|e| files.weights_mismatch(e))?;
        let head = model.head_rows(&[yes_id, no_id])?;
        Ok(Reranker {
            model,
            prompt,
            head,
            yes_id,
            no_id,
            config,
            files,
            shared: SharedBatches::default(),
        })
    }

    /// What search scores with: the prefix reused, 8 prompts per forward pass on a CPU and 64 on
    /// a GPU (where a pass over 64 costs little more than over 8).
    pub fn search_options(&self) -> ScoreOptions {
        ScoreOptions {
            reuse_prefix: true,
            batch_size: if self.model.device().is_cpu() { 8 } else { 64 },
        }
    }

    /// [`Reranker::score`] in forward passes shared with the queries that arrive within
    /// `window` (see [`SharedWindow`]); also says what the shared run was.
    pub fn score_shared(
        &self,
        instruction: &str,
        query: &str,
        docs: &[&str],
        window: SharedWindow,
    ) -> Result<(Vec<f32>, SharedRun), ModelError> {
        let prompts = self.prompts(instruction, query, docs)?;
        let opts = self.search_options();
        self.shared.score(prompts, window, |all| self.score_ids(all, opts))
    }

    /// Longest prompt in tokens.
    pub fn max_length(&self) -> usize {
        self.prompt.max_length
    }

    /// The token ids of one prompt (what the model reads for this document).
    pub fn prompt_ids(&self, instruction: &str, query: &str, doc: &str) -> Result<Vec<u32>, ModelError> {
        self.prompt.encode(instruction, query, doc)
    }

    /// Tokens of the template's fixed parts, before and after the user turn.
    pub fn template_tokens(&self) -> (&[u32], &[u32]) {
        self.prompt.template_tokens()
    }

    /// P("yes") for each document, in order.
    pub fn score(&self, instruction: &str, query: &str, docs: &[&str]) -> Result<Vec<f32>, ModelError> {
        self.score_with(instruction, query, docs, ScoreOptions::default())
    }

    /// [`Reranker::score`] with explicit options.
    pub fn score_with(
        &self,
        instruction: &str,
        query: &str,
        docs: &[&str],
        opts: ScoreOptions,
    ) -> Result<Vec<f32>, ModelError> {
        self.score_ids(&self.prompts(instruction, query, docs)?, opts)
    }

    /// The token ids of each document's prompt.
    fn prompts(&self, instruction: &str, query: &str, docs: &[&str]) -> Result<Vec<Vec<u32>>, ModelError> {
        docs.iter().map(|d| self.prompt.encode(instruction, query, d)).collect()
    }

    /// P("yes") for prompts already tokenized.
    pub fn score_ids(&self, prompts: &[Vec<u32>], opts: ScoreOptions) -> Result<Vec<f32>, ModelError> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let shared = if opts.reuse_prefix && prompts.len() > 1 {
            shared_prefix_len(prompts)
        } else {
            0
        };
        let prefix = if shared > 0 {
            Some(self.model.prefix(&prompts[0][..shared])?)
        } else {
            None
        };
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&i| prompts[i].len());
        let mut scores = vec![0.0; prompts.len()];
        for chunk in order.chunks(opts.batch_size.max(1)) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| &prompts[i][shared..]).collect();
            let logits = self.model.last_token_logits(prefix.as_ref(), &rows, &self.head)?;
            for (&i, l) in chunk.iter().zip(logits) {
                scores[i] = p_yes(l[0], l[1]);
            }
        }
        Ok(scores)
    }
}

/// P("yes") from the two logits: the softmax over (yes, no) read at yes, as the model card's
/// log_softmax + exp computes it.
pub fn p_yes(yes: f32, no: f32) -> f32 {
    1.0 / (1.0 + (no - yes).exp())
}

/// Tokens every prompt starts with, leaving each prompt at least one token of its own (the
/// answer is read at a row's last token).
fn shared_prefix_len(prompts: &[Vec<u32>]) -> usize {
    let first = &prompts[0];
    let mut n = prompts.iter().map(Vec::len).min().unwrap_or(0).saturating_sub(1);
    for p in &prompts[1..] {
        n = n.min(first.iter().zip(p).take_while(|(a, b)| a == b).count());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::shared_prefix_len;

    #[test]
    fn shared_prefix_leaves_a_token_per_row() {
        assert_eq!(shared_prefix_len(&[vec![1, 2, 3, 4], vec![1, 2, 3, 5]]), 3);
        assert_eq!(shared_prefix_len(&[vec![1, 2, 3], vec![1, 2, 3, 4]]), 2);
        assert_eq!(shared_prefix_len(&[vec![1, 2], vec![1, 2]]), 1);
        assert_eq!(shared_prefix_len(&[vec![9, 2], vec![1, 2]]), 0);
    }
}

//! Finding a model's files in the Hugging Face layout, with an error that says what was looked
//! for, where, and how to provide it.

use std::path::{Path, PathBuf};

use super::ModelError;

/// The files of one model directory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    /// One file, or the shards listed by `model.safetensors.index.json`.
    pub weights: Vec<PathBuf>,
    /// The image preprocessing of CLIP and BLIP (absent for text-only models).
    pub preprocessor: Option<PathBuf>,
    /// [`ModelFiles::fingerprint`], once computed.
    fingerprint: std::sync::OnceLock<String>,
}

/// What a model is for: decides which files it needs and the repo named in hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// CLIP (text and image towers): needs `preprocessor_config.json` too.
    Clip,
    /// Qwen3-Reranker (a causal LM).
    Reranker,
    /// BLIP image captioning: needs `preprocessor_config.json` too.
    Captioner,
}

impl ModelKind {
    /// The Hugging Face repo used when none is named.
    pub fn default_repo(self) -> &'static str {
        match self {
            ModelKind::Clip => "openai/clip-vit-base-patch32",
            ModelKind::Reranker => "Qwen/Qwen3-Reranker-0.6B",
            ModelKind::Captioner => "Salesforce/blip-image-captioning-base",
        }
    }

    /// The environment variable that names this kind's model, over any configuration.
    pub const fn env_var(self) -> &'static str {
        match self {
            ModelKind::Clip => "MIRA_CLIP_MODEL",
            ModelKind::Reranker => "MIRA_RERANKER_MODEL",
            ModelKind::Captioner => "MIRA_CAPTION_MODEL",
        }
    }

    /// The model the environment names, else the default repo.
    pub fn env_or_default(self) -> String {
        std::env::var(self.env_var())
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| self.default_repo().to_owned())
    }

    /// The files every model of this kind needs (weights aside).
    pub fn required_files(self) -> &'static [&'static str] {
        match self {
            ModelKind::Clip | ModelKind::Captioner => &["config.json", "tokenizer.json", "preprocessor_config.json"],
            ModelKind::Reranker => &["config.json", "tokenizer.json"],
        }
    }
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

/// The shard files `model.safetensors.index.json` at `index` names, sorted, each once.
pub(super) fn shard_names(index: &Path) -> Result<Vec<String>, ModelError> {
    let text = std::fs::read_to_string(index)
        .map_err(|e| ModelError::Files(format!("cannot read {}: {e}", index.display())))?;
    let parsed: ShardIndex = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        file: index.display().to_string(),
        message: e.to_string(),
    })?;
    let mut names: Vec<String> = parsed.weight_map.into_values().collect();
    names.sort();
    names.dedup();
    Ok(names)
}

impl ModelFiles {
    /// Looks for the files of a model of `kind` in `dir`.
    pub fn find(dir: &Path, kind: ModelKind) -> Result<Self, ModelError> {
        let need_preprocessor = kind.required_files().contains(&"preprocessor_config.json");
        let mut missing = Vec::new();
        let file = |name: &str, missing: &mut Vec<String>| {
            let p = dir.join(name);
            if !p.is_file() {
                missing.push(name.to_owned());
            }
            p
        };
        let config = file("config.json", &mut missing);
        let tokenizer = file("tokenizer.json", &mut missing);
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let weights = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            shard_names(&index)?
                .into_iter()
                .map(|s| {
                    let p = dir.join(&s);
                    if !p.is_file() {
                        missing.push(s);
                    }
                    p
                })
                .collect()
        } else {
            missing.push("model.safetensors (or model.safetensors.index.json with its shards)".into());
            Vec::new()
        };
        let preprocessor = dir.join("preprocessor_config.json");
        let preprocessor = if preprocessor.is_file() {
            Some(preprocessor)
        } else {
            if need_preprocessor {
                missing.push("preprocessor_config.json".into());
            }
            None
        };
        if !missing.is_empty() {
            return Err(ModelError::Files(format!(
                "model directory {} lacks {}. Provide a Hugging Face model directory (for example \
                 `huggingface-cli download {} --local-dir DIR` on a machine with network access) and \
                 pass it with --model",
                dir.display(),
                missing.join(", "),
                kind.default_repo()
            )));
        }
        Ok(ModelFiles {
            dir: dir.to_owned(),
            config,
            tokenizer,
            weights,
            preprocessor,
            fingerprint: std::sync::OnceLock::new(),
        })
    }
}

impl ModelFiles {
    /// The model's tokenizer; an unusable tokenizer.json is a config error naming the file.
    pub fn tokenizer(&self) -> Result<tokenizers::Tokenizer, ModelError> {
        tokenizers::Tokenizer::from_file(&self.tokenizer).map_err(|e| ModelError::Config {
            file: self.tokenizer.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The weights, memory-mapped, as candle tensors of `dtype` on `device`.
    pub fn var_builder(
        &self,
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> Result<candle_nn::VarBuilder<'static>, ModelError> {
        // SAFETY: the weight files are memory-mapped read-only; Mira never writes model files,
        // and safetensors' header is validated before any tensor is read.
        Ok(unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&self.weights, dtype, device)? })
    }

    /// The error for weights that do not fit the model config.json describes.
    pub fn weights_mismatch(&self, e: candle_core::Error) -> ModelError {
        ModelError::Config {
            file: self.dir.display().to_string(),
            message: format!("the weights do not match config.json: {e}"),
        }
    }

    /// SHA-256 (hex) identifying the model's content: its config, tokenizer and preprocessing
    /// files and its weights. A weight file that links into the Hugging Face cache is named by
    /// its blob's SHA-256 already; any other is hashed (about a second per GB), once: what
    /// the embedding and caption caches are keyed by.
    pub fn fingerprint(&self) -> Result<&str, ModelError> {
        if let Some(f) = self.fingerprint.get() {
            return Ok(f);
        }
        // A failure (a file being replaced) is not kept: the next call reads again.
        let f = self.compute_fingerprint()?;
        Ok(self.fingerprint.get_or_init(|| f))
    }

    fn compute_fingerprint(&self) -> Result<String, ModelError> {
        use sha2::{Digest, Sha256};
        let read_err = |p: &Path, e: std::io::Error| ModelError::Files(format!("cannot read {}: {e}", p.display()));
        let mut h = Sha256::new();
        for p in [Some(&self.config), Some(&self.tokenizer), self.preprocessor.as_ref()]
            .into_iter()
            .flatten()
        {
            h.update(std::fs::read(p).map_err(|e| read_err(p, e))?);
        }
        for w in &self.weights {
            let blob = std::fs::read_link(w).ok().and_then(|t| {
                let name = t.file_name()?.to_str()?.to_owned();
                (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
            });
            match blob {
                Some(name) => h.update(name.as_bytes()),
                None => {
                    let mut f = std::fs::File::open(w).map_err(|e| read_err(w, e))?;
                    let mut inner = Sha256::new();
                    std::io::copy(&mut f, &mut inner).map_err(|e| read_err(w, e))?;
                    h.update(inner.finalize());
                }
            }
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

//! A model named by a local directory or by a Hugging Face repo id (`org/name`, optionally
//! `@revision`): the directory is used as it is; a repo id is looked up in the Hugging Face cache
//! (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`, the layout `huggingface-cli` writes) and,
//! unless `HF_HUB_OFFLINE` is set, downloaded from the hub into that cache.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use super::files::shard_names;
use super::{ModelError, ModelFiles, ModelKind};

/// Set to `1` (or `true`/`yes`/`on`) to never ask the hub: the cache must hold the model.
pub const HUB_OFFLINE_ENV: &str = "HF_HUB_OFFLINE";

/// Where models are looked up and whether the hub may be asked.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// The hub cache directory (`$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    pub offline: bool,
}

impl HubSettings {
    /// From `HF_HOME` and `HF_HUB_OFFLINE`, as the Hugging Face tools read them.
    pub fn from_env() -> Self {
        let offline = std::env::var(HUB_OFFLINE_ENV)
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        HubSettings {
            cache_dir: Cache::from_env().path().clone(),
            offline,
        }
    }
}

/// The directory holding the model `spec` names (see the module docs), with its files checked.
pub fn resolve_model(spec: &str, kind: ModelKind) -> Result<PathBuf, ModelError> {
    resolve_model_with(spec, kind, &HubSettings::from_env())
}

/// [`resolve_model`] with explicit settings.
pub fn resolve_model_with(spec: &str, kind: ModelKind, hub: &HubSettings) -> Result<PathBuf, ModelError> {
    let path = Path::new(spec);
    if path.is_dir() {
        ModelFiles::find(path, kind)?;
        return Ok(path.to_owned());
    }
    let looks_like_path = spec.starts_with(['/', '.', '~']) || spec.contains('\\') || spec.matches('/').count() > 1;
    if looks_like_path {
        return Err(ModelError::Files(format!(
            "model directory {spec} does not exist; it should hold {} and the weights \
             (model.safetensors, or model.safetensors.index.json with its shards), as \
             `huggingface-cli download {} --local-dir DIR` writes them",
            kind.required_files().join(", "),
            kind.default_repo()
        )));
    }
    let Some((repo_id, revision)) = parse_repo_id(spec) else {
        return Err(ModelError::Files(format!(
            "model `{spec}` is neither a directory nor a Hugging Face repo id (like `{}` or `{}@main`)",
            kind.default_repo(),
            kind.default_repo()
        )));
    };
    let repo = Repo::with_revision(repo_id.to_owned(), RepoType::Model, revision.to_owned());
    let cache = Cache::new(hub.cache_dir.clone());
    let repo_dir = hub.cache_dir.join(repo.folder_name());
    if let Some(dir) = cached_snapshot(&cache, &repo, &repo_dir, revision)
        && ModelFiles::find(&dir, kind).is_ok()
    {
        return Ok(dir);
    }
    if hub.offline {
        return Err(ModelError::Files(format!(
            "model {repo_id} (revision {revision}) is not complete in the Hugging Face cache at {} \
             (looked for {} and the weights), and {HUB_OFFLINE_ENV} is set, so the hub was not asked. \
             Run `huggingface-cli download {repo_id}` where the hub can be reached and point HF_HOME \
             at that cache, or pass a model directory",
            repo_dir.display(),
            kind.required_files().join(", "),
        )));
    }
    download(repo, repo_id, revision, kind, hub)
}

/// `org/name` or `org/name@revision` (revision `main` when absent).
fn parse_repo_id(spec: &str) -> Option<(&str, &str)> {
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let (org, name) = id.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let rev_ok = !revision.is_empty() && !revision.contains("..") && !revision.starts_with('/');
    (ok(org) && ok(name) && rev_ok).then_some((id, revision))
}

/// The snapshot directory of `revision`: a commit hash names it directly; a branch or tag goes
/// through `refs/`.
fn cached_snapshot(cache: &Cache, repo: &Repo, repo_dir: &Path, revision: &str) -> Option<PathBuf> {
    if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        let dir = repo_dir.join("snapshots").join(revision);
        return dir.is_dir().then_some(dir);
    }
    let config = cache.repo(repo.clone()).get("config.json")?;
    config.parent().map(Path::to_owned)
}

fn download(
    repo: Repo,
    repo_id: &str,
    revision: &str,
    kind: ModelKind,
    hub: &HubSettings,
) -> Result<PathBuf, ModelError> {
    let failed = |file: &str, e: hf_hub::api::sync::ApiError| {
        ModelError::Files(format!(
            "cannot download {file} of {repo_id} (revision {revision}) into {}: {e}. Pass a model \
             directory, or fill the cache with `huggingface-cli download {repo_id}` where the hub can \
             be reached (set {HUB_OFFLINE_ENV}=1 to never ask the hub)",
            hub.cache_dir.display()
        ))
    };
    let api = hf_hub::api::sync::ApiBuilder::from_cache(Cache::new(hub.cache_dir.clone()))
        .with_progress(true)
        .build()
        .map_err(|e| failed("anything", e))?;
    let api = api.repo(repo);
    let mut dir = None;
    for file in kind.required_files() {
        let path = api.get(file).map_err(|e| failed(file, e))?;
        dir = path.parent().map(Path::to_owned);
    }
    if api.get("model.safetensors").is_err() {
        let index = api
            .get("model.safetensors.index.json")
            .map_err(|e| failed("model.safetensors or model.safetensors.index.json", e))?;
        for shard in shard_names(&index)? {
            api.get(&shard).map_err(|e| failed(&shard, e))?;
        }
    }
    let dir = dir.ok_or_else(|| ModelError::Files(format!("{repo_id}: the hub returned no files")))?;
    ModelFiles::find(&dir, kind)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert_eq!(
            parse_repo_id("Qwen/Qwen3-Reranker-0.6B"),
            Some(("Qwen/Qwen3-Reranker-0.6B", "main"))
        );
        assert_eq!(
            parse_repo_id("openai/clip-vit-base-patch32@v1.0"),
            Some(("openai/clip-vit-base-patch32", "v1.0"))
        );
        assert_eq!(parse_repo_id("./models/clip"), None);
        assert_eq!(parse_repo_id("/models/clip"), None);
        assert_eq!(parse_repo_id("a/b/c"), None);
        assert_eq!(parse_repo_id("clip"), None);
        assert_eq!(parse_repo_id("org/name@"), None);
    }
}

//! Re-tagging when a plugin's tag vocabulary changes: the collections whose clip-tags fields
//! take their words from that plugin get their documents' tags chosen again, in the
//! background, one collection at a time under its write lock (uploads to it wait in the worker
//! queue, not on workers; searches go on and see each document with its old tags or its new
//! ones). Also at start, for what
//! changed while the server was down. `POST /v1/collections/{name}/retag` runs the same work
//! for one collection and answers with its report.

use std::sync::mpsc;
use std::sync::{Arc, Weak};

use mira_host::Result;
use mira_host::ingest::{NoProgress, RetagOptions, RetagReport};

use crate::state::AppState;

/// Re-tags one collection, with the live plugins' vocabularies; the caller holds its write
/// lock.
pub fn retag_now(st: &AppState, name: &str, force: bool) -> Result<RetagReport> {
    let c = st.collection(name)?;
    let opts = RetagOptions {
        vocabularies: st.registry.tag_vocabularies(),
        force,
    };
    mira_host::ingest::retag(&c, &opts, &NoProgress)
}

/// What the background re-tagger is asked to look at.
enum Job {
    /// The collections that take words from this plugin.
    Plugin(String),
    /// Every collection that takes words from a plugin.
    All,
}

/// Starts the background re-tagger: it listens to the registry for vocabulary changes, and
/// looks at every collection once now. It stops when the state is gone.
pub fn start(state: &Arc<AppState>) {
    let (tx, rx) = mpsc::channel::<Job>();
    let weak: Weak<AppState> = Arc::downgrade(state);
    let sender = tx.clone();
    state.registry.on_vocabulary_change(Arc::new(move |plugin: &str| {
        let _ = sender.send(Job::Plugin(plugin.to_owned()));
    }));
    let _ = tx.send(Job::All);
    drop(tx);
    let spawned = std::thread::Builder::new().name("mira-retag".into()).spawn(move || {
        while let Ok(job) = rx.recv() {
            // Later changes of the same plugin are covered by this pass (it reads the
            // vocabularies live): drop the queued duplicates.
            let mut jobs = vec![job];
            jobs.extend(rx.try_iter());
            let Some(st) = weak.upgrade() else { return };
            run(&st, &jobs);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the re-tagger: collections are re-tagged only on request");
    }
}

/// Re-tags the collections the jobs name, logging each outcome.
fn run(st: &AppState, jobs: &[Job]) {
    let all = jobs.iter().any(|j| matches!(j, Job::All));
    let names = match st.catalog.list() {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(error = %e, "re-tag: cannot list the collections");
            return;
        }
    };
    let loaded = st.registry.tag_vocabularies();
    for name in names {
        // The schema alone says whether a collection is concerned: the others are not opened.
        let Ok(schema) = st.catalog.schema(&name) else { continue };
        let plugins: Vec<&str> = schema
            .computed_fields
            .iter()
            .filter_map(|s| s.kind.vocabulary_plugin())
            .collect();
        let asked = plugins
            .iter()
            .any(|p| all || jobs.iter().any(|j| matches!(j, Job::Plugin(q) if q == p)));
        if !asked {
            continue;
        }
        // A plugin that is not loaded (unloaded, or not yet installed at start) leaves the
        // tags as they are until it is.
        if let Some(missing) = plugins.iter().find(|p| !loaded.contains_key(**p)) {
            tracing::warn!(collection = %name, plugin = %missing, "tags kept: their plugin is not loaded");
            continue;
        }
        // On this thread of its own, so waiting for the lock takes no worker.
        let lock = st.write_lock(&name);
        let _writing = lock.blocking_lock();
        match retag_now(st, &name, false) {
            Ok(r) if r.fields.is_empty() => {}
            Ok(r) => tracing::info!(
                collection = %name,
                fields = ?r.fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
                checked = r.checked,
                changed = r.changed,
                failed = r.failed,
                images_embedded = r.images_embedded,
                words_embedded = r.words_embedded,
                "re-tagged"
            ),
            Err(e) => tracing::warn!(collection = %name, error = %e, "re-tag failed"),
        }
    }
}

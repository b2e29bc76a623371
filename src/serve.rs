//! `mira serve`: the HTTP API and web page over the data directory, with the plugin directory
//! watched for hot swaps. Stops on Ctrl-C or SIGTERM after the requests in flight finish.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use mira_host::Catalog;
use mira_server::{AppState, ServerSettings};

use crate::cli::ServeArgs;
use crate::plugins;

pub fn run(data_dir: &Path, config: Option<&Path>, args: ServeArgs) -> Result<()> {
    let engine = plugins::engine_config(config, data_dir)?;
    let registry = plugins::registry(&engine, data_dir)?;
    let origin = config.map_or_else(
        || data_dir.join("mira.toml").display().to_string(),
        |p| p.display().to_string(),
    );
    let mut settings = ServerSettings::from_config(&engine, &origin)
        .map_err(anyhow::Error::msg)?
        .with_env();
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(w) = args.workers {
        settings.workers = w;
    }
    if let Some(q) = args.queue {
        settings.queue = q;
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let _watch = registry.watch().context("watching the plugin directory")?;
        if !addr.ip().is_loopback() && (settings.admin_key.is_none() || settings.search_key.is_none()) {
            eprintln!(
                "warning: listening on {addr} without {}: anyone who can reach it may use those routes \
                 (set [server] admin_key / search_key or MIRA_ADMIN_KEY / MIRA_SEARCH_KEY)",
                match (settings.admin_key.is_none(), settings.search_key.is_none()) {
                    (true, true) => "an admin key or a search key",
                    (true, false) => "an admin key",
                    _ => "a search key",
                }
            );
        }
        println!(
            "mira: serving {} at http://{addr}/ (API under /v1, OpenAPI at /openapi.json, metrics at /metrics; {} workers, queue {})",
            data_dir.display(),
            settings.worker_count(),
            settings.queue
        );
        let state = Arc::new(
            AppState::new(Catalog::new(data_dir), settings, registry).with_gate(engine.plugins.gate.clone()),
        );
        mira_server::serve(listener, state, shutdown()).await?;
        println!("mira: stopped");
        Ok(())
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("mira: shutting down; finishing requests in flight");
}

//! `mira-bench plugins`: the cost of the plugin stage (the e-commerce plugin's `fuse` over 1000
//! candidates, column-wise as `mira:ranking@0.2` passes them) as a WebAssembly component against
//! the same Rust code compiled natively, the per-query set-up cost (a fresh store and instance
//! from the pre-instantiated component), and the host's cost of building the columns.

use std::collections::HashMap;
use std::hint::black_box;

use anyhow::Result;
use mira_host::plugin::{LoadedPlugin, PluginLimits, PluginRuntime, wit};
use mira_plugin_sdk::Plugin;
use serde::Serialize;

use crate::timing::{time_ms, time_pair_ms};
use mira_test_artifacts::BUILTIN_PLUGINS;

#[derive(Serialize)]
pub struct PluginFigures {
    pub candidates: usize,
    pub setup_us: f64,
    pub fuse_wasm_ms: f64,
    pub stage_wasm_ms: f64,
    pub fuse_native_ms: f64,
    pub columns_us: f64,
    pub ratio_fuse: f64,
    pub ratio_stage: f64,
}

pub fn run(candidates: usize, reps: usize) -> Result<PluginFigures> {
    let limits = PluginLimits {
        time_ms: 10_000,
        max_candidates: candidates,
        ..Default::default()
    };
    let runtime = PluginRuntime::new(limits, None)?;
    let bytes = BUILTIN_PLUGINS
        .iter()
        .find(|(n, _)| *n == "ecommerce")
        .expect("built-in ecommerce")
        .1;
    let plugin =
        LoadedPlugin::load(&runtime, bytes, "built-in", &HashMap::new()).map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut rng = fastrand::Rng::with_seed(11);
    let rows: Vec<(f64, f64, i64, bool, f32)> = (0..candidates)
        .map(|i| {
            (
                5.0 + rng.f64() * 200.0,
                rng.f64() * 5.0,
                rng.i64(0..5000),
                rng.bool(),
                1.0 / (61.0 + i as f32),
            )
        })
        .collect();

    // The host's WIT types and the SDK's are two generated families of the same shapes: one
    // macro builds the same request and candidates in either.
    macro_rules! inputs {
        ($m:ident) => {{
            let req = $m::Request {
                query: "red silk dress".into(),
                has_image_query: false,
                scenario: Some("ecommerce".into()),
                params: vec![$m::Param {
                    key: "max_price".into(),
                    value: "100".into(),
                }],
                now: 1_767_225_600,
            };
            let field = |name: &str, value: $m::FieldValue| $m::Field {
                name: name.into(),
                value,
            };
            let cands: Vec<$m::Candidate> = rows
                .iter()
                .enumerate()
                .map(|(i, (price, rating, reviews, stock, retrieval))| $m::Candidate {
                    id: format!("p{i}"),
                    fields: vec![
                        field("title", $m::FieldValue::Text(format!("product {i} red silk dress"))),
                        field("price", $m::FieldValue::Number(*price)),
                        field("rating", $m::FieldValue::Number(*rating)),
                        field("reviews", $m::FieldValue::Integer(*reviews)),
                        field("in_stock", $m::FieldValue::Boolean(*stock)),
                    ],
                    scores: $m::StageScores {
                        bm25: Some(retrieval * 100.0),
                        bm25_rank: Some(i as u32 + 1),
                        vector: None,
                        vector_rank: None,
                        retrieval: *retrieval,
                        retrieval_rank: i as u32 + 1,
                        rerank: None,
                    },
                    tags: vec![],
                    caption: None,
                    has_image: true,
                })
                .collect();
            (req, cands)
        }};
    }
    use mira_plugin_sdk as sdk;
    let (host_req, host_cands) = inputs!(wit);
    let (native_req, native_cands) = inputs!(sdk);

    // mira:ranking@0.2: `fuse` takes columns of the fields the plugin names. Both sides build
    // them once, outside the timings; `columns_us` is what the host spends building them.
    let fields = &plugin.description.fuse_fields;
    let host_columns = mira_host::plugin::columns::of(&host_cands, fields);
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    let native_columns = sdk::Candidates::from_rows(&native_cands, &names);

    let wasm_scores = plugin
        .session()
        .and_then(|mut s| s.fuse_columns(&host_req, &host_columns))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let native_scores =
        mira_plugin_ecommerce::Ecommerce::fuse(&native_req, &native_columns).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // The two builds must agree before their speed is compared: to f32 rounding, since the
    // component's `log10` is the SDK's portable one and the native build's is the platform's
    // (`mira_plugin_sdk::math`; they differ by at most 2 ulp of an f64).
    let worst = wasm_scores
        .iter()
        .zip(&native_scores)
        .map(|(a, b)| ((a - b) / b.abs().max(f32::MIN_POSITIVE)).abs())
        .fold(0.0f32, |m, d| if d > m || d.is_nan() { d } else { m });
    anyhow::ensure!(
        wasm_scores.len() == native_scores.len() && worst <= 2.0 * f32::EPSILON,
        "the component and the native build disagree (worst relative difference {worst})"
    );

    let setup_us = time_ms(reps * 10, |_| {
        black_box(plugin.session().expect("session"));
    }) * 1e3;
    // The ratio's two sides in alternating blocks: this machine's slow spells (its cores are
    // shared) moved separate timings by 10-20%.
    let mut session = plugin.session().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (fuse_native_ms, fuse_wasm_ms) = time_pair_ms(
        reps,
        || {
            black_box(
                mira_plugin_ecommerce::Ecommerce::fuse(black_box(&native_req), black_box(&native_columns))
                    .expect("fuse"),
            );
        },
        || {
            black_box(session.fuse_columns(&host_req, &host_columns).expect("fuse"));
        },
    );
    let columns_us = time_ms(reps, |_| {
        black_box(mira_host::plugin::columns::of(black_box(&host_cands), fields));
    }) * 1e3;
    let stage_wasm_ms = time_ms(reps, |_| {
        let mut s = plugin.session().expect("session");
        black_box(s.fuse(&host_req, &host_cands).expect("fuse"));
    });
    Ok(PluginFigures {
        candidates,
        setup_us,
        fuse_wasm_ms,
        stage_wasm_ms,
        fuse_native_ms,
        columns_us,
        ratio_fuse: fuse_wasm_ms / fuse_native_ms,
        ratio_stage: stage_wasm_ms / fuse_native_ms,
    })
}

pub fn print(f: &PluginFigures) {
    println!("plugin stage (ecommerce fuse over {} candidates):", f.candidates);
    println!(
        "  native Rust (same source)          {:>9.3} ms   baseline",
        f.fuse_native_ms
    );
    println!(
        "  component, live instance           {:>9.3} ms   {:.2}x native",
        f.fuse_wasm_ms, f.ratio_fuse
    );
    println!(
        "  component, fresh instance + fuse   {:>9.3} ms   {:.2}x native",
        f.stage_wasm_ms, f.ratio_stage
    );
    println!("  per-call set-up (store + instance) {:>9.1} us", f.setup_us);
    println!("  host: candidates to columns        {:>9.1} us", f.columns_us);
}

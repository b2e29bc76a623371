//! The benchmark binary as users run it, small enough for CI: each suite must run to the end
//! and check what it measures (no timings are asserted).

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_mira-bench"))
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run mira-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The server load test, small: concurrent searches with a hot swap of the plugin in the
/// middle, zero failed requests, both versions seen.
#[test]
fn load_test_with_a_hot_swap_has_no_failed_request() {
    let v = bench(&["server", "--requests", "240", "--concurrency", "4", "--json"]);
    assert_eq!(v["failures"], 0, "{v}");
    assert_eq!(v["requests"], 240);
    let versions = v["versions"].as_object().unwrap();
    assert!(versions.contains_key("1.0.0") && versions.contains_key("2.0.0"), "{v}");
    for stage in ["round trip", "server total", "retrieval", "plugin"] {
        assert!(v["latency_ms"][stage][0].as_f64().unwrap() > 0.0, "{stage}: {v}");
    }
}

/// The plugin-boundary suite: the component and the native build of the same plugin agree.
#[test]
fn the_plugin_suite_compares_the_component_with_native_code() {
    let v = bench(&["plugins", "--queries", "10", "--json"]);
    assert_eq!(v["candidates"], 1000, "{v}");
    for figure in ["fuse_wasm_ms", "stage_wasm_ms", "fuse_native_ms"] {
        assert!(v[figure].as_f64().is_some_and(|ms| ms > 0.0), "{figure}: {v}");
    }
}

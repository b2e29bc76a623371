//! Builds ranking plugins from `plugins/` as WebAssembly components, for the build scripts of
//! the `mira` package (the built-in plugins it embeds) and of `mira-test-artifacts` (the test
//! plugins). Included by both with `#[path]`; not a crate of its own.
//!
//! Plugins target `wasm32-unknown-unknown`, linked by the toolchain's `wasm-component-ld`, so a
//! component imports only what the WIT world declares. Both scripts build into one directory
//! beside the outer build's target directory, so the plugins' shared dependencies (the SDK,
//! wit-bindgen) compile once; cargo's lock on that directory serialises concurrent builds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Inputs that should rebuild the plugins when they change (paths relative to the workspace).
pub const WATCHED: &[&str] = &[
    "wit",
    "plugins/Cargo.toml",
    "plugins/Cargo.lock",
    "plugins/wasm_build.rs",
    "plugins/sdk",
    "plugins/general",
    "plugins/ecommerce",
    "plugins/academic",
    "plugins/news",
    "plugins/testing",
];

/// The shared wasm target directory: `<outer target dir>/wasm-plugins`, found from `OUT_DIR`
/// (`<target>/<profile>/build/<package>-<hash>/out`).
pub fn wasm_target_dir() -> PathBuf {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    out.ancestors()
        .nth(4)
        .map(|target| target.join("wasm-plugins"))
        .unwrap_or_else(|| out.join("wasm-plugins"))
}

/// The component cargo writes for `package` (its crate name, with underscores).
pub fn wasm_path(target_dir: &Path, target: &str, package: &str) -> PathBuf {
    target_dir.join(target).join("release").join(format!("{package}.wasm"))
}

/// Installs a missing compilation target with rustup, so that a fresh checkout builds with a plain
/// `cargo build`. Without rustup, the error says what to install.
fn ensure_target(rustc: &str, target: &str) {
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output();
    let installed = libdir
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|dir| dir.is_dir() && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()));
    if installed {
        return;
    }
    println!("cargo:warning=installing the Rust target {target} with rustup (needed to build the ranking plugins)");
    let ok = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        panic!("the Rust target {target} is missing and rustup could not add it; run\n    rustup target add {target}");
    }
}

/// Builds the packages `extra` selects from the plugins workspace for `target`.
pub fn cargo_build(manifest_dir: &Path, target_dir: &Path, target: &str, extra: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    let sysroot = String::from_utf8(sysroot.stdout).unwrap();
    let host = std::env::var("HOST").unwrap();
    let linker = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(&host)
        .join("bin/wasm-component-ld");
    ensure_target(&rustc, target);
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest_dir)
        .args(["build", "--release", "--locked", "--target", target, "--target-dir"])
        .arg(target_dir)
        .args(extra)
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", &linker)
        // wasm SIMD: the compiler vectorises loops over columns (`fuse`), as a native build
        // does with SSE2; measured in `mira-bench plugins` (docs/benchmarks.md).
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "-Ctarget-feature=+simd128",
        );
    // The outer build's flags and wrappers (clippy's, coverage's) are not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the plugins");
    if !status.success() {
        panic!(
            "building the plugins for {target} failed (see above). The targets are installed with\n    \
             rustup target add wasm32-unknown-unknown wasm32-wasip2"
        );
    }
}

//! WASI 0.2 for plugins, granting nothing.
//!
//! Python (componentize-py) and JavaScript (componentize-js) components import WASI whatever the
//! plugin does: their runtimes print, read clocks and draw random numbers. Mira links WASI 0.2
//! (wasmtime-wasi) with a context that grants no authority:
//!
//! - no preopened directories (every file open fails), no environment variables, no arguments,
//!   stdin closed;
//! - no sockets (TCP, UDP and name lookups denied) and no HTTP: `wasi:http` imports link, but
//!   every call fails with a trap that says plugins have no network;
//! - stdout and stderr lines go to the host log under the plugin's name (at most
//!   [`MAX_OUTPUT_LINES`] lines of [`MAX_OUTPUT_LINE`] bytes per query; the rest is dropped);
//! - the wall clock reads the request's `now`, the monotonic clock starts at 0 for every query
//!   and advances 1 µs per read, and sleeping advances it instead of waiting, so no plugin can
//!   stall a thread in a host call;
//! - randomness is a ChaCha stream seeded from the request, so the same request gets the same
//!   numbers.
//!
//! A plugin therefore stays deterministic, and the WIT's "no clock, no I/O" promise holds for
//! components of any toolchain. Imports outside `mira:ranking/*` 0.1.x and 0.2.x, the WASI 0.2 interfaces
//! below and `wasi:http` are refused at load, all of them named at once.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, Resource, ResourceTable, ResourceType};
use wasmtime::{Engine, StoreContextMut};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

use super::PluginFailure;
use super::state::StoreState;

/// Output lines a plugin may write per query (stdout and stderr together).
pub(crate) const MAX_OUTPUT_LINES: u32 = 64;
/// Longest output line kept, in bytes (longer lines are cut).
pub(crate) const MAX_OUTPUT_LINE: usize = 1024;

/// The WASI 0.2 interfaces wasmtime-wasi provides (any 0.2.x version links to them).
const WASI_P2: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
];
/// The version wasmtime-wasi 48 defines its interfaces at (the monotonic clock is shadowed there;
/// after an upgrade that moves it, sleeping would be real again: the e2e test of an hour's sleep
/// returning at once, `tests/e2e/polyglot.rs`, fails then).
const WASI_VERSION: &str = "0.2.12";

/// Adds WASI 0.2 to the plugins' linker, with sleeping that advances the virtual clock.
pub(crate) fn link(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(&format!("wasi:clocks/monotonic-clock@{WASI_VERSION}"))?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, StoreState>, (nanos,): (u64,)| {
            let state = store.data_mut();
            state.sandbox.clock.advance(nanos);
            Ok((ready(&mut state.table)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, StoreState>, (when,): (u64,)| {
            let state = store.data_mut();
            state.sandbox.clock.advance_to(when);
            Ok((ready(&mut state.table)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A pollable that is ready at once (a sleep that has already happened, in virtual time).
fn ready(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
    struct Ready;
    #[wasmtime_wasi::async_trait]
    impl Pollable for Ready {
        async fn ready(&mut self) {}
    }
    let r = table.push(Ready)?;
    wasmtime_wasi::p2::subscribe(table, r)
}

/// What an import of a component resolves to.
#[derive(Debug, PartialEq)]
enum Import {
    /// Mira's own interfaces (`mira:ranking/*@0.1.x`).
    Mira,
    /// WASI 0.2, granting nothing.
    Wasi,
    /// `wasi:http`: linked, every call denied.
    Http,
    /// Nothing satisfies it.
    Unknown,
}

fn classify(name: &str) -> Import {
    let (iface, version) = name.split_once('@').unwrap_or((name, ""));
    let v0_2 = version.starts_with("0.2.");
    if iface.starts_with("mira:ranking/") && (version.starts_with("0.1.") || version.starts_with("0.2.")) {
        Import::Mira
    } else if v0_2 && WASI_P2.contains(&iface) {
        Import::Wasi
    } else if v0_2 && iface.starts_with("wasi:http/") {
        Import::Http
    } else {
        Import::Unknown
    }
}

/// The linker for one component: the shared one, plus denying stubs for its `wasi:http`
/// imports. Refuses, naming every one, imports nothing can satisfy.
pub(crate) fn linker_for(
    engine: &Engine,
    shared: &Linker<StoreState>,
    component: &Component,
) -> Result<Option<Linker<StoreState>>, PluginFailure> {
    let ty = component.component_type();
    let mut unknown = Vec::new();
    let mut http = Vec::new();
    for (name, _) in ty.imports(engine) {
        match classify(name) {
            Import::Mira | Import::Wasi => {}
            Import::Http => http.push(name),
            Import::Unknown => unknown.push(name),
        }
    }
    if !unknown.is_empty() {
        return Err(PluginFailure::ForbiddenImport {
            message: format!(
                "the component imports {} interface(s) Mira does not offer: {} (plugins may import \
                 mira:ranking/host 0.1.x or 0.2.x, and WASI 0.2; see docs/plugins.md)",
                unknown.len(),
                unknown.join(", ")
            ),
        });
    }
    if http.is_empty() {
        return Ok(None);
    }
    // Resources `wasi:http` uses from other interfaces (streams, pollables) are WASI's own; only
    // its own resources get the denying host type.
    let mut borrowed = Vec::new();
    for (name, ext) in ty.imports(engine) {
        if let (false, ComponentItem::ComponentInstance(instance)) = (http.contains(&name), ext.ty) {
            for (_, e) in instance.exports(engine) {
                if let ComponentItem::Resource(r) = e.ty {
                    borrowed.push(r);
                }
            }
        }
    }
    let mut linker = shared.clone();
    let deny = |e: wasmtime::Error| PluginFailure::Invalid {
        message: format!("cannot link wasi:http: {e:#}"),
    };
    for name in http {
        let Some(ComponentItem::ComponentInstance(instance)) = ty.get_import(engine, name).map(|e| e.ty) else {
            continue;
        };
        let mut li = linker.instance(name).map_err(deny)?;
        for (item, ext) in instance.exports(engine) {
            match ext.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{name}#{item}");
                    li.func_new(item, move |_, _, _, _| {
                        Err(wasmtime::format_err!(
                            "plugins have no network: {what} is denied (Mira links wasi:http only to refuse it)"
                        ))
                    })
                    .map_err(deny)?;
                }
                ComponentItem::Resource(r) if !borrowed.contains(&r) => {
                    li.resource(item, ResourceType::host::<HttpDenied>(), |_, _| Ok(()))
                        .map_err(deny)?;
                }
                _ => {}
            }
        }
    }
    Ok(Some(linker))
}

/// The host type behind `wasi:http` resources, none of which can ever be made.
struct HttpDenied;

/// Per-query inputs of the sandbox.
pub(crate) struct Sandbox {
    pub clock: VirtualClock,
}

/// The monotonic clock of one query, in nanoseconds from 0.
#[derive(Clone, Default)]
pub(crate) struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    fn advance(&self, nanos: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_add(nanos)));
    }

    fn advance_to(&self, when: u64) {
        self.0.fetch_max(when, Ordering::Relaxed);
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        // Saturating: a guest may sleep until `u64::MAX`, and the clock must never wrap back.
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_add(1_000)))
            .unwrap_or(u64::MAX)
    }
}

/// The wall clock: always the request's time.
struct RequestTime(Duration);

impl HostWallClock for RequestTime {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

/// The WASI context of one query: nothing granted, time and randomness from the request.
pub(crate) fn context(plugin: &Arc<str>, now: i64, seed: u64) -> (WasiCtx, Sandbox) {
    use rand::SeedableRng;
    let clock = VirtualClock::default();
    let lines = Arc::new(Mutex::new(Lines::default()));
    let mut b = WasiCtxBuilder::new();
    b.stdout(LogStream::new(plugin, "stdout", &lines))
        .stderr(LogStream::new(plugin, "stderr", &lines))
        .wall_clock(RequestTime(Duration::from_secs(now.max(0) as u64)))
        .monotonic_clock(clock.clone())
        .secure_random(rand::rngs::StdRng::seed_from_u64(seed))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15))
        .insecure_random_seed(u128::from(seed))
        .max_random_size(1 << 20)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    (b.build(), Sandbox { clock })
}

/// How many output lines a query's plugin has written (shared by stdout and stderr).
#[derive(Default)]
struct Lines {
    written: u32,
}

/// A plugin's stdout or stderr: bytes gathered into lines, each line logged under the plugin's
/// name. Writing never fails; past the caps, output is dropped.
#[derive(Clone)]
struct LogStream {
    inner: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    plugin: Arc<str>,
    stream: &'static str,
    pending: Vec<u8>,
    lines: Arc<Mutex<Lines>>,
}

impl LogStream {
    fn new(plugin: &Arc<str>, stream: &'static str, lines: &Arc<Mutex<Lines>>) -> Self {
        LogStream {
            inner: Arc::new(Mutex::new(LineBuffer {
                plugin: plugin.clone(),
                stream,
                pending: Vec::new(),
                lines: lines.clone(),
            })),
        }
    }

    fn write(&self, bytes: &[u8]) {
        if let Ok(mut b) = self.inner.lock() {
            b.write(bytes);
        }
    }
}

impl LineBuffer {
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            self.keep(&bytes[..i]);
            self.emit();
            bytes = &bytes[i + 1..];
        }
        self.keep(bytes);
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_OUTPUT_LINE.saturating_sub(self.pending.len());
        self.pending.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self) {
        let written = self.lines.lock().map_or(u32::MAX, |mut l| {
            l.written = l.written.saturating_add(1);
            l.written
        });
        if written <= MAX_OUTPUT_LINES {
            let line = printable(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
            tracing::info!(plugin = &*self.plugin, stream = self.stream, "{line}");
            return;
        }
        self.pending.clear();
        if written == MAX_OUTPUT_LINES + 1 {
            tracing::warn!(
                plugin = &*self.plugin,
                "more than {MAX_OUTPUT_LINES} output lines in one query; the rest are dropped"
            );
        }
    }
}

/// A plugin's line as the log shows it: control characters (terminal escapes, carriage returns
/// that would overwrite the line) become U+FFFD, so a plugin cannot forge or hide log lines.
pub(crate) fn printable(line: &str) -> String {
    line.trim_end_matches('\r')
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
        .collect()
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        LogStream::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_classified_by_interface_and_version() {
        assert_eq!(classify("mira:ranking/host@0.1.0"), Import::Mira);
        assert_eq!(classify("mira:ranking/host@0.2.0"), Import::Mira);
        assert_eq!(classify("mira:ranking/host@0.3.0"), Import::Unknown);
        assert_eq!(classify("wasi:io/streams@0.2.9"), Import::Wasi);
        assert_eq!(classify("wasi:cli/environment@0.2.0"), Import::Wasi);
        assert_eq!(classify("wasi:io/streams@0.3.0"), Import::Unknown);
        assert_eq!(classify("wasi:http/types@0.2.10"), Import::Http);
        assert_eq!(classify("wasi:keyvalue/store@0.2.0"), Import::Unknown);
        assert_eq!(classify("acme:thing/x"), Import::Unknown);
    }

    #[test]
    fn output_becomes_capped_lines() {
        let lines = Arc::new(Mutex::new(Lines::default()));
        let s = LogStream::new(&Arc::from("p"), "stdout", &lines);
        s.write(b"hello ");
        s.write(b"world\nsecond");
        assert_eq!(lines.lock().unwrap().written, 1);
        s.write(&vec![b'x'; 10 * MAX_OUTPUT_LINE]);
        assert!(s.inner.lock().unwrap().pending.len() <= MAX_OUTPUT_LINE);
        for _ in 0..200 {
            s.write(b"line\n");
        }
        assert_eq!(lines.lock().unwrap().written, 201);
        drop(s);
        assert_eq!(
            lines.lock().unwrap().written,
            201,
            "nothing pending after the last newline"
        );
    }

    #[test]
    fn output_cannot_carry_terminal_escapes() {
        assert_eq!(printable("ok\x1b[2J\rfake line\r"), "ok\u{fffd}[2J\u{fffd}fake line");
        assert_eq!(printable("tab\tkept"), "tab\tkept");
    }

    #[test]
    fn the_virtual_clock_only_moves_forward() {
        let c = VirtualClock::default();
        let a = c.now();
        c.advance(5_000_000);
        let b = c.now();
        assert!(b >= a + 5_000_000);
        c.advance_to(1);
        assert!(c.now() > b);
        // Sleeping until the end of time leaves the clock there; it never wraps.
        c.advance_to(u64::MAX - 10);
        let end = c.now();
        c.advance(u64::MAX);
        assert!(c.now() >= end && c.now() == u64::MAX);
    }
}

//! An indicatif progress bar for ingest: bytes or files, rate, ETA, rows, commits, and the
//! model's inference rate when fields are computed.

use std::cell::Cell;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mira_host::ingest::Progress;

pub struct IngestBar {
    bar: ProgressBar,
    committed: Cell<u64>,
    /// What the model has done, for the message: "N embedded (X/s), M cached".
    inference: Cell<Option<(u64, u64, f64)>>,
}

impl IngestBar {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.enable_steady_tick(Duration::from_millis(200));
        IngestBar {
            bar,
            committed: Cell::new(0),
            inference: Cell::new(None),
        }
    }
}

impl Progress for IngestBar {
    fn start(&self, total: u64, unit: &'static str) {
        let template = if unit == "bytes" {
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}"
        } else {
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {prefix} ({per_sec}, eta {eta}) {msg}"
        };
        self.bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.bar.set_prefix(unit);
        self.bar.set_length(total);
    }

    fn advance(&self, position: u64, rows: u64, indexed: u64) {
        self.bar.set_position(position);
        if rows.is_multiple_of(256) || self.inference.get().is_some() {
            let model = match self.inference.get() {
                Some((computed, cached, rate)) => format!(", {computed} embedded ({rate:.1}/s), {cached} from cache"),
                None => String::new(),
            };
            self.bar.set_message(format!(
                "{rows} rows, {indexed} indexed, {} committed{model}",
                self.committed.get()
            ));
        }
    }

    fn embedded(&self, computed: u64, cached: u64, per_sec: f64) {
        self.inference.set(Some((computed, cached, per_sec)));
    }

    fn committed(&self, documents: u64) {
        self.committed.set(documents);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Progress of the vector graphs built after ingest.
pub struct GraphBar {
    bar: ProgressBar,
}

impl GraphBar {
    pub fn new() -> Self {
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} vectors {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        GraphBar { bar }
    }

    /// Shows the graph being built (nothing while only verifying).
    pub fn show(&self, build: Option<&mira_host::vector::GraphBuild>) {
        if let Some(b) = build {
            if self.bar.is_hidden() {
                self.bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                self.bar.enable_steady_tick(Duration::from_millis(200));
            }
            self.bar.set_length(b.nodes as u64);
            self.bar.set_position(b.inserted as u64);
            self.bar.set_message(format!("building the `{}` graph", b.field));
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

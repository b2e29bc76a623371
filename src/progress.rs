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
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files ({per_sec}, eta {eta}) {msg}"
        };
        self.bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
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

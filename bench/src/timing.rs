//! Timing helpers shared by the suites.

use std::time::Instant;

/// Milliseconds per call of `f`, best of the mean over `reps` calls after a warm-up.
pub fn time_ms(reps: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..reps.min(3) {
        f(i);
    }
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for i in 0..reps {
            f(i);
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e3 / reps as f64);
    }
    best
}

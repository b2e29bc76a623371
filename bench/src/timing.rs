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

/// Milliseconds per call of `a` and of `b`, timed in alternating blocks of calls (so a slow spell
/// of the machine falls on both alike), each the best block's mean: as many calls of each as
/// [`time_ms`] makes, in 150 blocks.
pub fn time_pair_ms(reps: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    for _ in 0..reps.min(3) {
        a();
        b();
    }
    let block = (reps / 50).max(1);
    let mut best = (f64::INFINITY, f64::INFINITY);
    for _ in 0..(3 * reps).div_ceil(block) {
        let t = Instant::now();
        for _ in 0..block {
            a();
        }
        best.0 = best.0.min(t.elapsed().as_secs_f64() * 1e3 / block as f64);
        let t = Instant::now();
        for _ in 0..block {
            b();
        }
        best.1 = best.1.min(t.elapsed().as_secs_f64() * 1e3 / block as f64);
    }
    best
}

//! A plugin for the host's tests: it passes its load check, then misbehaves on the request
//! parameter `mode`: `loop` (never returns), `hog` (allocates 1 GiB), `trap` (panics), `short`
//! (one score too few), `nan` (a NaN score), `error` (a fuse error), `fuzz` (an answer drawn
//! from the parameter `seed`: any length near the candidates', any scores, finite or not, or an
//! error; for the host's fuzz test).

use mira_plugin_sdk::helpers::param;
use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, register};

pub struct Hostile;

impl Plugin for Hostile {
    fn describe() -> Description {
        Description::new("hostile", "1.0.0", &["hostile"])
    }

    fn fuse_rows(req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        let mut scores: Vec<f32> = candidates.iter().map(|c| c.scores.retrieval).collect();
        match param(req, "mode") {
            Some("loop") => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Some("hog") => {
                let mut v = vec![0u8; 1 << 30];
                v[12345] = 1;
                scores[0] = f32::from(std::hint::black_box(&v)[12345]);
            }
            Some("trap") => panic!("hostile plugin panics on purpose"),
            Some("short") => {
                scores.pop();
            }
            Some("nan") => scores[0] = f32::NAN,
            Some("error") => return Err(FuseError::Internal("refusing on purpose".into())),
            Some("fuzz") => {
                let seed = param(req, "seed").and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                return fuzzed(seed, candidates.len());
            }
            _ => {}
        }
        Ok(scores)
    }
}

/// An answer drawn from `seed` (a 64-bit LCG, so host and plugin need no shared RNG).
fn fuzzed(seed: u64, n: usize) -> Result<Vec<f32>, FuseError> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let len = match next() % 8 {
        0 => 0,
        1 => n.saturating_sub(1),
        2 => n + 1,
        3 => n * 2 + 1,
        _ => n,
    };
    if next() % 16 == 0 {
        return Err(FuseError::Internal("x".repeat((next() % 5000) as usize)));
    }
    Ok((0..len)
        .map(|_| match next() % 10 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => f32::MAX,
            4 => -0.0,
            5 => f32::MIN_POSITIVE / 2.0,
            _ => (next() as f32 / u32::MAX as f32) * 200.0 - 100.0,
        })
        .collect())
}

register!(Hostile);

//! A plugin for the host's tests: it passes its load check, then misbehaves on the request
//! parameter `mode`: `loop` (never returns), `hog` (allocates 1 GiB), `trap` (panics), `short`
//! (one score too few), `nan` (a NaN score), `error` (a fuse error).

use mira_plugin_sdk::helpers::param;
use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, register};

pub struct Hostile;

impl Plugin for Hostile {
    fn describe() -> Description {
        Description::new("hostile", "1.0.0", &["hostile"])
    }

    fn fuse(req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
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
            _ => {}
        }
        Ok(scores)
    }
}

register!(Hostile);

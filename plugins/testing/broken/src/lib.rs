//! A plugin for the host's tests that fails its load check: every score is NaN.

use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, register};

pub struct Broken;

impl Plugin for Broken {
    fn describe() -> Description {
        Description::new("broken", "1.0.0", &["broken"])
    }

    fn fuse_rows(_req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        Ok(vec![f32::NAN; candidates.len()])
    }
}

register!(Broken);

// Shared by swap-a and swap-b: a plugin whose answers say which version produced them.
use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, register};

pub struct Swapper;

impl Plugin for Swapper {
    fn describe() -> Description {
        Description::new("swapper", VERSION, &["swap"])
    }

    fn instruction(_req: &Request) -> String {
        format!("swapper {VERSION}")
    }

    fn fuse_rows(_req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        Ok(vec![SCORE; candidates.len()])
    }
}

register!(Swapper);

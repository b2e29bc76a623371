// Shared by swap-a and swap-b: a plugin whose answers say which version produced them, and whose
// tag vocabulary differs between them.
use mira_plugin_sdk::{Candidate, Description, FuseError, Plugin, Request, register};

pub struct Swapper;

impl Plugin for Swapper {
    fn describe() -> Description {
        let mut d = Description::new("swapper", VERSION, &["swap"]);
        d.tag_vocabulary = TAGS.iter().map(|w| (*w).to_owned()).collect();
        d
    }

    fn instruction(_req: &Request) -> String {
        format!("swapper {VERSION}")
    }

    fn fuse_rows(_req: &Request, candidates: &[Candidate]) -> Result<Vec<f32>, FuseError> {
        Ok(vec![SCORE; candidates.len()])
    }
}

register!(Swapper);

//! A plugin for the host's tests, built for wasm32-wasip2: reading an environment variable makes
//! the component import WASI, which Mira does not offer, so the host must refuse it at load.

use mira_plugin_sdk::{Description, Plugin, Request, register};

pub struct Sneaky;

impl Plugin for Sneaky {
    fn describe() -> Description {
        Description::new("sneaky", "1.0.0", &["sneaky"])
    }

    fn instruction(_req: &Request) -> String {
        std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default()
    }
}

register!(Sneaky);

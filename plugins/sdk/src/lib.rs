//! # mira-plugin-sdk
//!
//! Everything a Rust ranking plugin for Mira needs: the generated bindings of the
//! `mira:ranking@0.2` WIT world, the [`Plugin`] trait (only [`Plugin::describe`] is required), the
//! [`register!`] macro that exports a type as the component's implementation, and helpers for
//! fusion ([`helpers`]). `fuse` receives the candidates column-wise ([`Candidates`]: every
//! stage's scores, and the fields named in [`Plugin::FUSE_FIELDS`]); a plugin may implement
//! [`Plugin::fuse`] on the columns, or [`Plugin::fuse_rows`] on candidates rebuilt from them.
//!
//! ```ignore
//! use mira_plugin_sdk::{Description, Plugin, register};
//!
//! struct Mine;
//!
//! impl Plugin for Mine {
//!     fn describe() -> Description {
//!         Description::new("mine", env!("CARGO_PKG_VERSION"), &["general"])
//!     }
//! }
//!
//! register!(Mine);
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown` and the linker set to the
//! toolchain's `wasm-component-ld` (see docs/plugins.md); the result is a component Mira loads.

pub mod helpers;
mod host;
pub mod math;
mod plugin;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "ranking-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_ranking_plugin",
        default_bindings_module: "mira_plugin_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

mod columns;

pub use bindings::mira::ranking::columns::{Candidates, Column, FieldColumn, StageColumns};
pub use bindings::mira::ranking::types::{
    Candidate, Description, Field, FieldValue, FuseError, Param, Request, StageScores,
};
#[cfg(not(target_arch = "wasm32"))]
pub use host::set_test_config;
pub use host::{Level, config, config_or, log};
pub use plugin::{DEFAULT_INSTRUCTION, Plugin};

impl Description {
    /// A description with the default rerank window (50) and no tag vocabulary.
    pub fn new(name: &str, version: &str, scenarios: &[&str]) -> Self {
        Description {
            name: name.to_owned(),
            version: version.to_owned(),
            scenarios: scenarios.iter().map(|s| (*s).to_owned()).collect(),
            rerank_window: 50,
            tag_vocabulary: Vec::new(),
        }
    }
}

impl Field {
    pub fn new(name: &str, value: FieldValue) -> Self {
        Field {
            name: name.to_owned(),
            value,
        }
    }
}

impl Candidate {
    /// A candidate with the given fields whose only stage score is `retrieval` (rank 1), for
    /// tests and tools; set the other stages, tags or caption on the result as needed.
    pub fn new(id: &str, fields: Vec<Field>, retrieval: f32) -> Self {
        Candidate {
            id: id.to_owned(),
            fields,
            scores: StageScores {
                bm25: None,
                bm25_rank: None,
                vector: None,
                vector_rank: None,
                retrieval,
                retrieval_rank: 1,
                rerank: None,
            },
            tags: Vec::new(),
            caption: None,
            has_image: false,
        }
    }
}

/// Exports a type implementing [`Plugin`] as the component's `plugin` interface.
#[macro_export]
macro_rules! register {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __MiraPluginExport;

        impl $crate::bindings::exports::mira::ranking::plugin::Guest for __MiraPluginExport {
            fn describe() -> $crate::Description {
                <$plugin as $crate::Plugin>::describe()
            }
            fn instruction(req: $crate::Request) -> String {
                <$plugin as $crate::Plugin>::instruction(&req)
            }
            fn render(req: $crate::Request, candidate: $crate::Candidate) -> String {
                <$plugin as $crate::Plugin>::render(&req, &candidate)
            }
            fn rerank_depth(req: $crate::Request, retrieval_scores: Vec<f32>) -> u32 {
                <$plugin as $crate::Plugin>::rerank_depth(&req, &retrieval_scores)
            }
            fn fuse_fields() -> Vec<String> {
                <$plugin as $crate::Plugin>::FUSE_FIELDS.iter().map(|f| (*f).to_owned()).collect()
            }
            fn fuse(req: $crate::Request, candidates: $crate::Candidates) -> Result<Vec<f32>, $crate::FuseError> {
                <$plugin as $crate::Plugin>::fuse(&req, &candidates)
            }
        }

        // Exported symbols only exist in the component: their names (`mira:ranking/plugin@0.2.0#fuse`)
        // are not valid for native linkers, and native builds are for tests.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_ranking_plugin!(__MiraPluginExport with_types_in $crate::bindings);
    };
}

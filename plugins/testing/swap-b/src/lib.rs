//! Version 2 of the `swapper` test plugin: every score is 2 and the instruction names the version.
const VERSION: &str = "2.0.0";
const SCORE: f32 = 2.0;
include!("../../swap-a/src/swapper.rs");

//! Version 1 of the `swapper` test plugin: every score is 1 and the instruction names the version.
const VERSION: &str = "1.0.0";
const SCORE: f32 = 1.0;
include!("swapper.rs");

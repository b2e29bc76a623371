//! Version 1 of the `swapper` test plugin: every score is 1, the instruction names the version,
//! and its tag vocabulary has three words.
const VERSION: &str = "1.0.0";
const SCORE: f32 = 1.0;
const TAGS: &[&str] = &["red", "green", "cat"];
include!("swapper.rs");

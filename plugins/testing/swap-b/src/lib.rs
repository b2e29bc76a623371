//! Version 2 of the `swapper` test plugin: every score is 2, the instruction names the version,
//! and its tag vocabulary adds two words to version 1's.
const VERSION: &str = "2.0.0";
const SCORE: f32 = 2.0;
const TAGS: &[&str] = &["red", "green", "cat", "blue", "harbour"];
include!("../../swap-a/src/swapper.rs");

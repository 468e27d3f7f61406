//! The federation fixture now lives in `test_support::federation`; this
//! re-export keeps `mod common;` in tests not yet moved to it
//! (`status_feed.rs`).
#![allow(unused_imports)]

pub use test_support::federation::*;

//! Mock upstream: see README of the crate.

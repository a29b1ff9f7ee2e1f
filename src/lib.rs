//! ezrouter: an LLM API gateway on Pingora. This crate is the wiring: config, the Pingora
//! service and its phases, and the upstream exchange. Translation lives in `ezrouter-protocol`,
//! per-phase filters in `ezrouter-plugins`, the offline upstream in `ezrouter-mock`.

pub mod admin;
pub mod config;
pub mod gateway;
pub mod listener;
pub mod logger;
pub mod metrics;
pub mod server;
pub mod snapshot;
pub mod upstream;

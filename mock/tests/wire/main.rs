//! Black-box tests: a mock server on 127.0.0.1:0, real sockets, a tiny
//! hand-written HTTP client, strict checks of the wire formats.

mod anthropic;
mod client;
mod faults;
mod gemini;
mod http;
mod openai;

use ezrouter_mock::{start, MockConfig, MockServer};
use serde_json::Value;

pub async fn server() -> MockServer {
    start("127.0.0.1:0", MockConfig::default())
        .await
        .expect("start mock")
}

/// Merge the fields of `extra` into the object `base`.
pub fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
    base
}

/// The text of the default 8-chunk answer starts like this.
pub const OPENING: &str = "héllo 世界 🦀 ";

//! Response translation: upstream answers (one JSON body or an SSE stream) into what the client
//! expects, in its own dialect and stream mode.
//!
//! The gateway builds one [`ResponseTranslator`] per exchange with [`response_translator`] from the
//! [`ResponseContext`] that request translation produced, pushes the upstream body through it as it
//! arrives and sends what comes out. Same dialect and stream mode on both sides is a byte-exact
//! pass-through (usage read on the side); every other combination goes through the response IR
//! ([`message::Message`] for whole bodies, the streaming state machines of `crate::stream` for
//! streams).

pub mod error;
pub mod finish;
pub(crate) mod ids;
pub mod message;
pub mod usage;
mod usage_scan;

pub use error::{stream_error_event, upstream_error};
pub use finish::Finish;
pub use message::{Block, Message};

use crate::{ApiError, ResponseContext, Usage};

/// Converts one upstream answer for the client, incrementally.
pub trait ResponseTranslator: Send {
    /// Upstream body bytes as they arrive (any split); appends what the client should receive now.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// [`push`](Self::push) for bytes the caller gives up: a translator that sends them on as
    /// they came can hand them over instead of copying them.
    fn push_owned(&mut self, chunk: Vec<u8>, out: &mut Vec<u8>) {
        // A burst's output is about its input: room for it in one allocation instead of a
        // doubling series that copies at each step.
        out.reserve(chunk.len());
        self.push(&chunk, out);
    }
    /// Upstream body ended. Appends the tail. For a JSON client this is where the whole body is
    /// produced; Err when the upstream body cannot be converted (the gateway then answers with the
    /// error instead).
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ApiError>;
    /// For a JSON client, after [`finish`](Self::finish): `sent` is the body it produced. A
    /// translator that handed the upstream body over as it came reads its usage here, after the
    /// caller has sent that body, so the client does not wait for the accounting. The others
    /// have nothing left to read.
    fn settle_usage(&mut self, sent: &[u8]) {
        let _ = sent;
    }
    /// Usage seen so far (normalized); final after `finish` and, for a JSON client,
    /// `settle_usage`.
    fn usage(&self) -> Usage;
}

/// The translator for one exchange described by `ctx`:
/// - JSON client: `push` appends nothing, `finish` appends the whole body (or fails);
/// - streaming client: `push`/`finish` append SSE in the client's dialect, event by event as the
///   upstream bytes arrive (a JSON upstream is turned into a synthesized event sequence at
///   `finish`). An upstream stream that ends before finishing yields an error event, never a
///   silently truncated answer.
pub fn response_translator(ctx: ResponseContext) -> Box<dyn ResponseTranslator> {
    crate::stream::build(ctx, ids::now_unix(), ids::random_seed())
}

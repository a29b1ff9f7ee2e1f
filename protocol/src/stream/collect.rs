//! [`Ev`] -> one [`Message`], rendered as the client's JSON body at the end (stream -> non-stream,
//! and non-stream -> non-stream across dialects).

use super::{Encoder, Ev, State};
use crate::response::message::{Block, Message, RenderCtx};
use crate::ApiError;

#[derive(Debug, Default)]
pub(crate) struct Collect {
    msg: Message,
    /// Block index of each client tool slot.
    tools: Vec<usize>,
    error: Option<ApiError>,
}

impl Encoder for Collect {
    fn ev(&mut self, ev: &Ev<'_>, _st: &State, _out: &mut Vec<u8>) {
        let blocks = &mut self.msg.blocks;
        match *ev {
            Ev::Text(t) => match blocks.last_mut() {
                Some(Block::Text(s)) => s.push_str(t),
                _ => blocks.push(Block::Text(t.to_string())),
            },
            Ev::Refusal(t) => match blocks.last_mut() {
                Some(Block::Refusal(s)) => s.push_str(t),
                _ => blocks.push(Block::Refusal(t.to_string())),
            },
            Ev::ThinkingStart => blocks.push(Block::Thinking {
                text: String::new(),
                signature: None,
            }),
            Ev::Thinking(t) => match blocks.last_mut() {
                Some(Block::Thinking {
                    text,
                    signature: None,
                }) => text.push_str(t),
                _ => blocks.push(Block::Thinking {
                    text: t.to_string(),
                    signature: None,
                }),
            },
            Ev::Signature(sig) => {
                if let Some(Block::Thinking {
                    signature: s @ None,
                    ..
                }) = blocks.last_mut()
                {
                    *s = Some(sig.to_string());
                }
            }
            Ev::RedactedThinking(d) => blocks.push(Block::RedactedThinking(d.to_string())),
            Ev::ToolStart {
                slot,
                id,
                name,
                signature,
            } => {
                if self.tools.len() <= slot {
                    self.tools.resize(slot + 1, usize::MAX);
                }
                self.tools[slot] = blocks.len();
                blocks.push(Block::ToolCall {
                    id: id.to_string(),
                    name: name.to_string(),
                    args: String::new(),
                    signature: signature.map(str::to_string),
                });
            }
            Ev::ToolArgs { slot, json } => {
                if let Some(Block::ToolCall { args, .. }) =
                    self.tools.get(slot).and_then(|&i| blocks.get_mut(i))
                {
                    args.push_str(json);
                }
            }
            Ev::Finish {
                reason,
                stop_sequence,
            } => {
                self.msg.finish = Some(reason);
                self.msg.stop_sequence = stop_sequence.map(str::to_string);
            }
            Ev::Error(ref e) => self.error = Some(e.clone()),
            Ev::Start { .. } | Ev::Usage(_) | Ev::Ping | Ev::End => {}
        }
    }

    fn finish(&mut self, st: &State, out: &mut Vec<u8>) -> Result<(), ApiError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.msg.id = st.id.clone();
        self.msg.created = st.created;
        self.msg.usage = st.usage;
        let rc = RenderCtx {
            model: &st.model,
            unsigned: &st.unsigned_sig,
            format: st.format,
        };
        self.msg.render(st.client, &rc, out);
        Ok(())
    }
}

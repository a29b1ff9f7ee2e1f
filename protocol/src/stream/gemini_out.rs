//! [`Ev`] -> Gemini `alt=sse` chunks, for a streaming Gemini client on another upstream.
//! Function calls are whole in Gemini, so their arguments are gathered until the call ends.

use serde_json::{json, Value};

use super::{Encoder, Ev, State};
use crate::response::finish::Finish;
use crate::response::message::ArgsObject;
use crate::response::usage;
use crate::sse;
use crate::Dialect;

#[derive(Debug, Default)]
pub(crate) struct GeminiOut {
    /// The call being gathered: (id, name, args).
    tool: Option<(String, String, String)>,
    finish: Option<Finish>,
}

impl GeminiOut {
    fn emit(
        &self,
        st: &State,
        out: &mut Vec<u8>,
        parts: Value,
        extra: Option<(Finish, usage::GeminiUsageOut)>,
    ) {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut v = json!({"candidates": [], "modelVersion": st.model, "responseId": st.id});
        if let Some((finish, usage)) = extra {
            cand["finishReason"] = json!(finish.gemini());
            v["usageMetadata"] = json!(usage);
        }
        v["candidates"] = json!([cand]);
        sse::write_data(
            out,
            &serde_json::to_vec(&v).expect("serializing a Value cannot fail"),
        );
    }

    fn flush_tool(&mut self, st: &State, out: &mut Vec<u8>) {
        if let Some((id, name, args)) = self.tool.take() {
            let part =
                json!({"functionCall": {"id": id, "name": name, "args": ArgsObject::new(&args)}});
            self.emit(st, out, json!([part]), None);
        }
    }
}

impl Encoder for GeminiOut {
    fn ev(&mut self, ev: &Ev<'_>, st: &State, out: &mut Vec<u8>) {
        if !matches!(ev, Ev::ToolArgs { .. } | Ev::Usage(_) | Ev::Ping) {
            if let Ev::ToolStart { .. }
            | Ev::Finish { .. }
            | Ev::End
            | Ev::Text(_)
            | Ev::Thinking(_)
            | Ev::Refusal(_) = ev
            {
                self.flush_tool(st, out);
            }
        }
        match *ev {
            Ev::Thinking(t) => self.emit(st, out, json!([{"text": t, "thought": true}]), None),
            Ev::Text(t) | Ev::Refusal(t) => self.emit(st, out, json!([{"text": t}]), None),
            Ev::ToolStart { id, name, .. } => {
                self.tool = Some((id.to_string(), name.to_string(), String::new()))
            }
            Ev::ToolArgs { json, .. } => {
                if let Some((_, _, args)) = self.tool.as_mut() {
                    args.push_str(json);
                }
            }
            Ev::Finish { reason, .. } => self.finish = Some(reason),
            Ev::End => {
                let finish = self.finish.unwrap_or(Finish::EndTurn);
                self.emit(
                    st,
                    out,
                    json!([{"text": ""}]),
                    Some((finish, usage::to_gemini(&st.usage))),
                );
            }
            Ev::Error(ref e) => crate::response::error::write_stream_error(out, Dialect::Gemini, e),
            Ev::Start { .. }
            | Ev::ThinkingStart
            | Ev::Ping
            | Ev::Usage(_)
            | Ev::Signature(_)
            | Ev::RedactedThinking(_) => {}
        }
    }
}

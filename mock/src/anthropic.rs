//! Anthropic Messages.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::common::{push_field_u64, push_model, First, Plan, ToolCall};
use crate::http::Events;
use crate::text::{args_from_schema, push_json_str, push_u64, split_pieces, ANTHROPIC_SIGNATURE};

#[derive(Deserialize)]
pub(crate) struct MsgReq<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub messages: Option<IgnoredAny>,
    #[serde(default)]
    pub max_tokens: Option<IgnoredAny>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub thinking: Option<Value>,
    #[serde(default)]
    pub tools: Option<First>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

impl MsgReq<'_> {
    pub(crate) fn stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// `(thinking on, thinking text visible)`.
    pub(crate) fn thinking(&self) -> (bool, bool) {
        let Some(t) = &self.thinking else {
            return (false, false);
        };
        let on = matches!(
            t.get("type").and_then(Value::as_str),
            Some("enabled" | "adaptive")
        );
        let visible = t.get("display").and_then(Value::as_str) != Some("omitted");
        (on, visible)
    }

    pub(crate) fn tool(&self) -> Option<ToolCall> {
        let choice = self
            .tool_choice
            .as_ref()
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str);
        if choice == Some("none") {
            return None;
        }
        let tool = self.tools.as_ref()?.0.as_ref()?;
        Some(ToolCall {
            name: tool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("tool")
                .to_string(),
            args: args_from_schema(tool.get("input_schema")),
        })
    }

    pub(crate) fn missing(&self) -> Option<&'static str> {
        if self.model.is_none() {
            Some("model: Field required")
        } else if self.messages.is_none() {
            Some("messages: Field required")
        } else if self.max_tokens.is_none() {
            Some("max_tokens: Field required")
        } else {
            None
        }
    }
}

/// `input_tokens` excludes cache reads.
fn push_usage(out: &mut Vec<u8>, p: &Plan, output_tokens: u64, full: bool) {
    out.extend_from_slice(b"{\"input_tokens\":");
    push_u64(out, p.prompt_tokens - p.cached_tokens);
    out.extend_from_slice(b",\"cache_creation_input_tokens\":0");
    push_field_u64(out, "cache_read_input_tokens", p.cached_tokens);
    if full {
        out.extend_from_slice(b",\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0}");
    }
    push_field_u64(out, "output_tokens", output_tokens);
    if full {
        out.extend_from_slice(b",\"service_tier\":\"standard\"");
    }
    out.push(b'}');
}

fn push_tool_id(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"\"toolu_mock_");
    push_u64(out, id);
    out.push(b'"');
}

fn push_msg_head(out: &mut Vec<u8>, p: &Plan) {
    out.extend_from_slice(b"{\"id\":\"msg_mock_");
    push_u64(out, p.id);
    out.extend_from_slice(b"\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"");
    push_model(out, p.model);
    out.extend_from_slice(b"\",\"content\":[");
}

fn stop_reason(p: &Plan) -> &'static [u8] {
    if p.tool.is_some() {
        b"\"tool_use\""
    } else {
        b"\"end_turn\""
    }
}

/// Non-streaming message.
pub(crate) fn message_json(p: &Plan, out: &mut Vec<u8>) {
    push_msg_head(out, p);
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    if p.think_chunks > 0 {
        sep(out);
        out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":\"");
        if p.think_visible {
            p.tables.full_think(p.think_chunks, out);
        }
        out.extend_from_slice(b"\",\"signature\":\"");
        out.extend_from_slice(ANTHROPIC_SIGNATURE.as_bytes());
        out.extend_from_slice(b"\"}");
    }
    if p.text {
        sep(out);
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":\"");
        p.tables.full_text(p.chunks, out);
        out.extend_from_slice(b"\"}");
    }
    if let Some(t) = &p.tool {
        sep(out);
        out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
        push_tool_id(out, p.id);
        out.extend_from_slice(b",\"name\":");
        push_json_str(out, &t.name);
        out.extend_from_slice(b",\"input\":");
        out.extend_from_slice(t.args.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"stop_reason\":");
    out.extend_from_slice(stop_reason(p));
    out.extend_from_slice(b",\"stop_sequence\":null,\"usage\":");
    push_usage(out, p, p.completion_tokens(), true);
    out.push(b'}');
}

fn event(ev: &mut Events, name: &str) {
    ev.buf.extend_from_slice(b"event: ");
    ev.buf.extend_from_slice(name.as_bytes());
    ev.buf.extend_from_slice(b"\ndata: ");
}

fn end(ev: &mut Events) {
    ev.buf.extend_from_slice(b"\n\n");
    ev.end();
}

fn block_start(ev: &mut Events, index: u64) {
    event(ev, "content_block_start");
    ev.buf
        .extend_from_slice(b"{\"type\":\"content_block_start\",\"index\":");
    push_u64(&mut ev.buf, index);
    ev.buf.extend_from_slice(b",\"content_block\":");
}

fn delta(ev: &mut Events, index: u64, ty: &str, field: &str) {
    event(ev, "content_block_delta");
    ev.buf
        .extend_from_slice(b"{\"type\":\"content_block_delta\",\"index\":");
    push_u64(&mut ev.buf, index);
    ev.buf.extend_from_slice(b",\"delta\":{\"type\":\"");
    ev.buf.extend_from_slice(ty.as_bytes());
    ev.buf.extend_from_slice(b"\",\"");
    ev.buf.extend_from_slice(field.as_bytes());
    ev.buf.extend_from_slice(b"\":");
}

fn block_stop(ev: &mut Events, index: u64) {
    event(ev, "content_block_stop");
    ev.buf
        .extend_from_slice(b"{\"type\":\"content_block_stop\",\"index\":");
    push_u64(&mut ev.buf, index);
    ev.buf.push(b'}');
    end(ev);
}

/// Named-event stream: message_start, ping, blocks (thinking, text,
/// tool_use) with sequential indices, message_delta, message_stop.
pub(crate) fn message_stream(p: &Plan, ev: &mut Events) {
    event(ev, "message_start");
    ev.buf
        .extend_from_slice(b"{\"type\":\"message_start\",\"message\":");
    push_msg_head(&mut ev.buf, p);
    ev.buf
        .extend_from_slice(b"],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
    push_usage(&mut ev.buf, p, 1, true);
    ev.buf.extend_from_slice(b"}}");
    end(ev);
    event(ev, "ping");
    ev.buf.extend_from_slice(b"{\"type\":\"ping\"}");
    end(ev);

    let mut index = 0;
    if p.think_chunks > 0 {
        block_start(ev, index);
        ev.buf
            .extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}");
        end(ev);
        if p.think_visible {
            for i in 0..p.think_chunks {
                delta(ev, index, "thinking_delta", "thinking");
                ev.buf.push(b'"');
                ev.buf.extend_from_slice(p.tables.think(i).as_bytes());
                ev.buf.extend_from_slice(b"\"}}");
                end(ev);
            }
        }
        delta(ev, index, "signature_delta", "signature");
        ev.buf.push(b'"');
        ev.buf.extend_from_slice(ANTHROPIC_SIGNATURE.as_bytes());
        ev.buf.extend_from_slice(b"\"}}");
        end(ev);
        block_stop(ev, index);
        index += 1;
    }
    if p.text {
        block_start(ev, index);
        ev.buf
            .extend_from_slice(b"{\"type\":\"text\",\"text\":\"\"}}");
        end(ev);
        for i in 0..p.chunks {
            delta(ev, index, "text_delta", "text");
            ev.buf.push(b'"');
            ev.buf.extend_from_slice(p.tables.text(i).as_bytes());
            ev.buf.extend_from_slice(b"\"}}");
            end(ev);
        }
        block_stop(ev, index);
        index += 1;
    }
    if let Some(t) = &p.tool {
        block_start(ev, index);
        ev.buf.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
        push_tool_id(&mut ev.buf, p.id);
        ev.buf.extend_from_slice(b",\"name\":");
        push_json_str(&mut ev.buf, &t.name);
        ev.buf.extend_from_slice(b",\"input\":{}}}");
        end(ev);
        delta(ev, index, "input_json_delta", "partial_json");
        ev.buf.extend_from_slice(b"\"\"}}");
        end(ev);
        for piece in split_pieces(&t.args, p.chunks) {
            delta(ev, index, "input_json_delta", "partial_json");
            push_json_str(&mut ev.buf, piece);
            ev.buf.extend_from_slice(b"}}");
            end(ev);
        }
        block_stop(ev, index);
    }
    event(ev, "message_delta");
    ev.buf
        .extend_from_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
    ev.buf.extend_from_slice(stop_reason(p));
    ev.buf
        .extend_from_slice(b",\"stop_sequence\":null},\"usage\":");
    push_usage(&mut ev.buf, p, p.completion_tokens(), false);
    ev.buf.push(b'}');
    end(ev);
    event(ev, "message_stop");
    ev.buf.extend_from_slice(b"{\"type\":\"message_stop\"}");
    end(ev);
}

/// `GET /v1/models` in Anthropic's shape.
pub(crate) fn models_json(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"data\":[");
    let models = crate::openai::MODELS;
    for (i, m) in models.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":\"model\",\"id\":");
        push_json_str(out, m);
        out.extend_from_slice(b",\"display_name\":");
        push_json_str(out, m);
        out.extend_from_slice(b",\"created_at\":\"2025-01-01T00:00:00Z\"}");
    }
    out.extend_from_slice(b"],\"has_more\":false,\"first_id\":");
    push_json_str(out, models[0]);
    out.extend_from_slice(b",\"last_id\":");
    push_json_str(out, models[models.len() - 1]);
    out.push(b'}');
}

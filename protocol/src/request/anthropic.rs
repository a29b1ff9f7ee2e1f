//! Anthropic Messages requests.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::{
    args_object, args_string, as_obj, effort_budget, get, idx, json_instruction, merge_same_role,
    opt_arr, opt_bool, opt_f64, opt_obj, opt_str, opt_u64, req_str, str_list, sub, unsupported,
    unsupported_block, wrong_type, Obj, Target, WriteOut,
};
use crate::ir::{
    Block, MediaSource, Msg, OutputFormat, Request, Role, Signature, Tool, ToolChoice,
    ORIGIN_ANTHROPIC,
};
use crate::{ApiError, Dialect};

const KNOWN: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "output_format",
    "metadata",
];

/// Image types Anthropic accepts.
const IMAGE_MIMES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Placeholder for a turn that must exist but has no content (alternation, leading user turn).
pub(super) const PLACEHOLDER: &str = "(empty)";

pub(super) fn parse(mut root: Obj) -> Result<Request, ApiError> {
    let mut req = Request {
        model: opt_str(&root, "model", "")?.unwrap_or_default().to_string(),
        stream: opt_bool(&root, "stream", "")?.unwrap_or(false),
        ..Request::default()
    };
    let s = &mut req.sampling;
    s.max_tokens = opt_u64(&root, "max_tokens", "")?;
    s.temperature = opt_f64(&root, "temperature", "")?;
    s.top_p = opt_f64(&root, "top_p", "")?;
    s.top_k = opt_u64(&root, "top_k", "")?;
    s.stop = str_list(&root, "stop_sequences", "")?;

    match get(&root, "system") {
        None => {}
        Some(Value::String(t)) => req.system.push(Block::text(t.as_str())),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                let p = idx("system", i);
                let o = as_obj(b, &p)?;
                match opt_str(o, "type", &p)? {
                    Some("text") | None => req.system.push(Block::Text {
                        text: req_str(o, "text", &p)?.to_string(),
                        cache_control: get(o, "cache_control").cloned(),
                    }),
                    Some(other) => {
                        return Err(ApiError::invalid_param(
                            sub(&p, "type"),
                            format!("system blocks must be text, got `{other}`"),
                        ))
                    }
                }
            }
        }
        Some(_) => return Err(wrong_type("system", "a string or an array of text blocks")),
    }

    if let Some(md) = opt_obj(&root, "metadata", "")? {
        req.user_id = opt_str(md, "user_id", "metadata")?.map(str::to_string);
    }

    // Reasoning and output.
    if let Some(t) = opt_obj(&root, "thinking", "")? {
        let r = &mut req.reasoning;
        r.display = opt_str(t, "display", "thinking")?.map(str::to_string);
        if let Some(d) = &r.display {
            r.include_thoughts = Some(d != "omitted");
        }
        match req_str(t, "type", "thinking")? {
            "enabled" => {
                r.enabled = Some(true);
                r.budget = opt_u64(t, "budget_tokens", "thinking")?;
            }
            "adaptive" => {
                r.enabled = Some(true);
                r.adaptive = true;
            }
            "disabled" => r.enabled = Some(false),
            other => {
                return Err(ApiError::invalid_param(
                    "thinking.type",
                    format!("unknown thinking type `{other}`"),
                ))
            }
        }
    }
    if let Some(Value::Object(mut oc)) = root.remove("output_config") {
        if let Some(e) = opt_str(&oc, "effort", "output_config")? {
            req.reasoning.effort = Some(e.to_string());
        }
        if let Some(f) = opt_obj(&oc, "format", "output_config")? {
            req.output_format = parse_format(f, "output_config.format")?;
        }
        oc.remove("effort");
        oc.remove("format");
        if !oc.is_empty() {
            req.extras.insert("output_config".into(), Value::Object(oc));
        }
    }
    if let Some(f) = opt_obj(&root, "output_format", "")? {
        req.output_format = parse_format(f, "output_format")?;
    }

    parse_tools(&root, &mut req)?;

    let msgs = opt_arr(&root, "messages", "")?
        .ok_or_else(|| ApiError::invalid_param("messages", "`messages` is required"))?;
    for (i, m) in msgs.iter().enumerate() {
        let p = idx("messages", i);
        let m = as_obj(m, &p)?;
        let role = match req_str(m, "role", &p)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::invalid_param(
                    sub(&p, "role"),
                    format!("role must be `user` or `assistant`, got `{other}`"),
                ))
            }
        };
        let blocks = parse_content(get(m, "content"), &sub(&p, "content"))?;
        req.messages.push(Msg { role, blocks });
    }

    for k in KNOWN {
        root.remove(*k);
    }
    for (k, v) in root {
        req.extras.insert(k, v);
    }
    Ok(req)
}

fn parse_format(f: &Obj, p: &str) -> Result<Option<OutputFormat>, ApiError> {
    Ok(match opt_str(f, "type", p)? {
        Some("json_schema") => Some(OutputFormat::JsonSchema {
            name: None,
            description: None,
            schema: get(f, "schema")
                .cloned()
                .ok_or_else(|| ApiError::invalid_param(sub(p, "schema"), "`schema` is required"))?,
            strict: None,
        }),
        _ => None,
    })
}

fn parse_tools(root: &Obj, req: &mut Request) -> Result<(), ApiError> {
    for (i, t) in opt_arr(root, "tools", "")?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = idx("tools", i);
        let o = as_obj(t, &p)?;
        let ty = opt_str(o, "type", &p)?;
        let custom = matches!(ty, None | Some("custom"));
        if !custom && get(o, "input_schema").is_none() {
            // A server tool (web_search_*, bash_*, text_editor_*, code_execution_*…).
            req.tools.push(Tool {
                name: opt_str(o, "name", &p)?.unwrap_or_default().to_string(),
                description: None,
                schema: None,
                strict: None,
                cache_control: None,
                native: Some((Dialect::Anthropic, t.clone())),
            });
            continue;
        }
        req.tools.push(Tool {
            name: req_str(o, "name", &p)?.to_string(),
            description: opt_str(o, "description", &p)?.map(str::to_string),
            schema: get(o, "input_schema").cloned(),
            strict: opt_bool(o, "strict", &p)?,
            cache_control: get(o, "cache_control").cloned(),
            native: None,
        });
    }
    if let Some(tc) = opt_obj(root, "tool_choice", "")? {
        let p = "tool_choice";
        req.tool_choice = match req_str(tc, "type", p)? {
            "auto" => Some(ToolChoice::Auto),
            "any" => Some(ToolChoice::Required),
            "none" => Some(ToolChoice::None),
            "tool" => Some(ToolChoice::Tool(req_str(tc, "name", p)?.to_string())),
            other => {
                return Err(ApiError::invalid_param(
                    "tool_choice.type",
                    format!("unknown tool_choice type `{other}`"),
                ))
            }
        };
        if opt_bool(tc, "disable_parallel_tool_use", p)? == Some(true) {
            req.parallel_tool_calls = Some(false);
        }
    }
    Ok(())
}

fn parse_content(v: Option<&Value>, p: &str) -> Result<Vec<Block>, ApiError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Block::text(s.as_str())]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(j, b)| parse_block(b, &idx(p, j)))
            .collect(),
        Some(_) => Err(wrong_type(p, "a string or an array of content blocks")),
    }
}

fn parse_block(v: &Value, p: &str) -> Result<Block, ApiError> {
    let o = as_obj(v, p)?;
    let cache_control = get(o, "cache_control").cloned();
    Ok(match req_str(o, "type", p)? {
        "text" => Block::Text {
            text: req_str(o, "text", p)?.to_string(),
            cache_control,
        },
        "image" => Block::Image {
            source: parse_source(o, p)?,
            detail: None,
            cache_control,
            path: Some(p.to_string()),
        },
        "document" => Block::Document {
            source: parse_source(o, p)?,
            title: opt_str(o, "title", p)?.map(str::to_string),
            context: opt_str(o, "context", p)?.map(str::to_string),
            citations: get(o, "citations").cloned(),
            cache_control,
            path: Some(p.to_string()),
        },
        "tool_use" => Block::ToolCall {
            id: opt_str(o, "id", p)?.unwrap_or_default().to_string(),
            name: req_str(o, "name", p)?.to_string(),
            args_json: args_string(get(o, "input")),
            signature: None,
            cache_control,
        },
        "tool_result" => Block::ToolResult {
            call_id: opt_str(o, "tool_use_id", p)?
                .unwrap_or_default()
                .to_string(),
            name: None,
            content: parse_content(get(o, "content"), &sub(p, "content"))?,
            is_error: opt_bool(o, "is_error", p)?.unwrap_or(false),
            cache_control,
        },
        "thinking" => Block::Thinking {
            text: opt_str(o, "thinking", p)?.unwrap_or_default().to_string(),
            signature: opt_str(o, "signature", p)?
                .filter(|s| !s.is_empty())
                .map(|s| Signature::from_wire(s, ORIGIN_ANTHROPIC)),
        },
        "redacted_thinking" => {
            let s = Signature::from_wire(req_str(o, "data", p)?, ORIGIN_ANTHROPIC);
            Block::RedactedThinking {
                data: s.value,
                origin: s.origin,
            }
        }
        _ => Block::Opaque {
            dialect: Dialect::Anthropic,
            value: v.clone(),
        },
    })
}

fn parse_source(o: &Obj, p: &str) -> Result<MediaSource, ApiError> {
    let sp = sub(p, "source");
    let s = opt_obj(o, "source", p)?
        .ok_or_else(|| ApiError::invalid_param(&sp, "`source` is required"))?;
    Ok(match req_str(s, "type", &sp)? {
        "base64" => MediaSource::Base64 {
            mime: req_str(s, "media_type", &sp)?.to_string(),
            data: req_str(s, "data", &sp)?.to_string(),
        },
        "url" => MediaSource::Url(req_str(s, "url", &sp)?.to_string()),
        "file" => MediaSource::FileId {
            dialect: Dialect::Anthropic,
            id: req_str(s, "file_id", &sp)?.to_string(),
        },
        "text" => MediaSource::Text(req_str(s, "data", &sp)?.to_string()),
        "content" => MediaSource::Content(parse_content(get(s, "content"), &sub(&sp, "content"))?),
        other => {
            return Err(ApiError::invalid_param(
                sub(&sp, "type"),
                format!("unknown source type `{other}`"),
            ))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Writer

/// `max_tokens` when the client gave none: the model family's output limit.
pub(crate) fn default_max_tokens(model: &str) -> u64 {
    let m = model.to_ascii_lowercase();
    if m.contains("opus-4-0") || m.contains("opus-4-1") || m.contains("opus-4-2025") {
        32000
    } else if m.contains("opus-4")
        || m.contains("sonnet-4")
        || m.contains("haiku-4")
        || m.contains("3-7")
    {
        64000
    } else if m.contains("3-5") {
        8192
    } else if m.contains("claude-3") {
        4096
    } else {
        8192
    }
}

pub(super) fn write(req: &Request, t: &Target, out: &mut WriteOut) -> Result<Obj, ApiError> {
    let caps = t.caps;
    let same = req.source == Some(Dialect::Anthropic);
    let mut body = Map::new();
    body.insert("model".into(), json!(t.model));

    // System: leading system blocks, then hoisted mid-conversation system messages.
    let mut system: Vec<Value> = Vec::new();
    let mut push_system = |b: &Block| {
        if let Block::Text {
            text,
            cache_control,
        } = b
        {
            if !text.trim().is_empty() {
                let mut o = json!({"type": "text", "text": text});
                if let Some(c) = cache_control {
                    o["cache_control"] = c.clone();
                }
                system.push(o);
            }
        }
    };
    req.system.iter().for_each(&mut push_system);
    for m in req.messages.iter().filter(|m| m.role == Role::System) {
        m.blocks.iter().for_each(&mut push_system);
    }

    // Tools, tool choice, structured output.
    let mut tools: Vec<Value> = Vec::new();
    let mut choice = req.tool_choice.clone();
    let mut allowed: Option<Vec<String>> = None;
    if let Some(ToolChoice::Allowed { required, names }) = &choice {
        allowed = Some(names.clone());
        choice = Some(if *required {
            ToolChoice::Required
        } else {
            ToolChoice::Auto
        });
    }
    for (i, tool) in req.tools.iter().enumerate() {
        if allowed.as_ref().is_some_and(|a| !a.contains(&tool.name)) {
            continue;
        }
        tools.push(write_tool(tool, i)?);
    }
    let mut json_schema_native: Option<&Value> = None;
    match &req.output_format {
        Some(OutputFormat::JsonObject) => push_system(&Block::text(json_instruction(None))),
        Some(OutputFormat::JsonSchema {
            name,
            description,
            schema,
            ..
        }) => {
            if caps.structured_outputs {
                json_schema_native = Some(schema);
            } else {
                // Tool trick (§2.7): force a tool whose input is the answer.
                let rules = super::NameRules::for_dialect(Dialect::Anthropic);
                let name = rules.fit(name.as_deref().unwrap_or("json_tool_call"), false);
                let mut o = json!({"name": name, "input_schema": schema_object(Some(schema))});
                if let Some(d) = description {
                    o["description"] = json!(d);
                }
                tools.push(o);
                choice = Some(ToolChoice::Tool(name.clone()));
                out.json_tool = Some(name);
            }
        }
        None => {}
    }
    if !system.is_empty() {
        let single_plain = system.len() == 1 && system[0].get("cache_control").is_none();
        body.insert(
            "system".into(),
            if single_plain {
                system[0]["text"].clone()
            } else {
                Value::Array(system)
            },
        );
    }

    // Messages.
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        if m.role == Role::System {
            continue;
        }
        let mut blocks = Vec::new();
        for (j, b) in m.blocks.iter().enumerate() {
            blocks.extend(write_block(b, i, j, t)?);
        }
        turns.push((m.role, blocks));
    }
    let mut turns = merge_same_role(turns, |b| b["type"] == "tool_result");
    if turns.first().is_some_and(|(r, _)| *r == Role::Assistant) {
        turns.insert(
            0,
            (
                Role::User,
                vec![json!({"type": "text", "text": PLACEHOLDER})],
            ),
        );
    }
    if turns.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` must contain at least one non-empty message",
        ));
    }

    // Thinking.
    let r = &req.reasoning;
    let forced = matches!(choice, Some(ToolChoice::Required | ToolChoice::Tool(_)));
    let mut thinking_on = req.reasoning_on() == Some(true);
    if thinking_on && forced {
        // Pitfall 20: "Thinking may not be enabled when tool_choice forces tool use".
        thinking_on = false;
    }
    if thinking_on && tool_loop_without_thinking(&turns) {
        // Pitfall 24: the last assistant turn of a running tool loop must start with a
        // (replayable) thinking block, else the API 400s.
        thinking_on = false;
    }
    let client_max = req.sampling.max_tokens;
    let mut max_tokens = client_max
        .or(caps.default_max_tokens)
        .unwrap_or_else(|| default_max_tokens(t.model));
    let mut output_config = match req.extras.get("output_config") {
        Some(Value::Object(o)) if same => o.clone(),
        _ => Map::new(),
    };
    if thinking_on {
        let adaptive = r.adaptive || (caps.adaptive_thinking && r.budget.is_none());
        let mut th = if adaptive {
            json!({"type": "adaptive"})
        } else {
            let (budget, explicit) = match (r.budget, r.effort.as_deref().and_then(effort_budget)) {
                (Some(b), _) => (b, true),
                (None, Some(b)) => (b, false),
                (None, None) => (8192, false),
            };
            let mut budget = budget.max(1024);
            if !explicit && max_tokens > 1024 && budget >= max_tokens {
                budget = (max_tokens - 1).max(1024);
            }
            if max_tokens <= budget {
                max_tokens = budget + client_max.unwrap_or(max_tokens).max(1024);
            }
            json!({"type": "enabled", "budget_tokens": budget})
        };
        if let Some(d) = &r.display {
            th["display"] = json!(d);
        }
        body.insert("thinking".into(), th);
    } else if r.enabled == Some(false) {
        body.insert("thinking".into(), json!({"type": "disabled"}));
    }
    if let Some(e) = &r.effort {
        if (thinking_on && (r.adaptive || caps.adaptive_thinking)) || same {
            let e = match e.as_str() {
                "minimal" => "low",
                other => other,
            };
            if e != "none" {
                output_config.insert("effort".into(), json!(e));
            }
        }
    }
    if let Some(s) = json_schema_native {
        output_config.insert("format".into(), json!({"type": "json_schema", "schema": s}));
    }
    if !output_config.is_empty() {
        body.insert("output_config".into(), Value::Object(output_config));
    }

    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| {
                    json!({
                        "role": if role == Role::User { "user" } else { "assistant" },
                        "content": content,
                    })
                })
                .collect(),
        ),
    );

    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        let mut tc = match &choice {
            Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
            Some(ToolChoice::Required) => Some(json!({"type": "any"})),
            Some(ToolChoice::None) => Some(json!({"type": "none"})),
            Some(ToolChoice::Tool(n)) => Some(json!({"type": "tool", "name": n})),
            Some(ToolChoice::Allowed { .. }) | None => None,
        };
        if req.parallel_tool_calls == Some(false) && !matches!(choice, Some(ToolChoice::None)) {
            tc.get_or_insert_with(|| json!({"type": "auto"}))["disable_parallel_tool_use"] =
                json!(true);
        }
        if let Some(tc) = tc {
            body.insert("tool_choice".into(), tc);
        }
    }

    // Sampling (§2.6).
    let s = &req.sampling;
    let mut temperature = s.temperature.map(|t| t.clamp(0.0, 1.0));
    let mut top_p = s.top_p;
    let mut top_k = s.top_k;
    if thinking_on {
        temperature = temperature.filter(|t| *t == 1.0);
        top_p = top_p.filter(|p| *p >= 0.95);
        top_k = None;
    }
    if temperature.is_some() && top_p.is_some() {
        // Pitfall 27: recent models reject temperature together with top_p.
        top_p = None;
    }
    if let Some(v) = temperature {
        body.insert("temperature".into(), json!(v));
    }
    if let Some(v) = top_p {
        body.insert("top_p".into(), json!(v));
    }
    if let Some(v) = top_k {
        body.insert("top_k".into(), json!(v));
    }
    if !s.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(s.stop));
    }
    if let Some(u) = &req.user_id {
        body.insert("metadata".into(), json!({ "user_id": u }));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    if same {
        for (k, v) in &req.extras {
            if !body.contains_key(k) {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(body)
}

/// The conversation ends in a tool loop (last turn is user with tool results) whose assistant
/// turn does not start with a thinking block.
fn tool_loop_without_thinking(turns: &[(Role, Vec<Value>)]) -> bool {
    let n = turns.len();
    if n < 2 {
        return false;
    }
    let (last_role, last) = &turns[n - 1];
    let (prev_role, prev) = &turns[n - 2];
    *last_role == Role::User
        && *prev_role == Role::Assistant
        && last.iter().any(|b| b["type"] == "tool_result")
        && !prev
            .first()
            .is_some_and(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
}

/// A JSON schema usable as `input_schema` (must be an object schema).
fn schema_object(schema: Option<&Value>) -> Value {
    match schema {
        Some(Value::Object(o)) if o.get("type").is_none_or(|t| t == "object") => {
            let mut o = o.clone();
            o.entry("type").or_insert(json!("object"));
            Value::Object(o)
        }
        Some(other @ Value::Object(_)) => json!({
            "type": "object",
            "properties": {"value": other},
            "required": ["value"],
        }),
        _ => json!({"type": "object", "properties": {}}),
    }
}

fn write_tool(tool: &Tool, i: usize) -> Result<Value, ApiError> {
    if let Some((d, v)) = &tool.native {
        return match d {
            Dialect::Anthropic => Ok(v.clone()),
            _ => Err(unsupported(&idx("tools", i), Dialect::Anthropic)),
        };
    }
    let mut o = Map::new();
    o.insert("name".into(), json!(tool.name));
    if let Some(d) = &tool.description {
        o.insert("description".into(), json!(d));
    }
    o.insert("input_schema".into(), schema_object(tool.schema.as_ref()));
    if let Some(s) = tool.strict {
        o.insert("strict".into(), json!(s));
    }
    if let Some(c) = &tool.cache_control {
        o.insert("cache_control".into(), c.clone());
    }
    Ok(Value::Object(o))
}

fn with_cache(mut v: Value, c: &Option<Value>) -> Value {
    if let Some(c) = c {
        v["cache_control"] = c.clone();
    }
    v
}

/// One IR block as Anthropic blocks (none when it must be dropped).
fn write_block(b: &Block, i: usize, j: usize, t: &Target) -> Result<Vec<Value>, ApiError> {
    Ok(match b {
        Block::Text {
            text,
            cache_control,
        } => {
            // Pitfall 3: never send empty (or whitespace-only) text blocks.
            if text.trim().is_empty() {
                return Ok(vec![]);
            }
            vec![with_cache(
                json!({"type": "text", "text": text}),
                cache_control,
            )]
        }
        Block::Image {
            source,
            cache_control,
            ..
        } => {
            let src = match source {
                MediaSource::Base64 { mime, data } => {
                    let mime = super::normalize_mime(mime);
                    if !IMAGE_MIMES.contains(&mime.as_str()) {
                        return Err(unsupported_block(
                            b,
                            i,
                            j,
                            &format!("image type `{mime}`"),
                            t.dialect,
                        ));
                    }
                    json!({"type": "base64", "media_type": mime, "data": data})
                }
                MediaSource::Url(u) => json!({"type": "url", "url": u}),
                MediaSource::FileId {
                    dialect: Dialect::Anthropic,
                    id,
                } => json!({"type": "file", "file_id": id}),
                _ => return Err(unsupported_block(b, i, j, "this image source", t.dialect)),
            };
            vec![with_cache(
                json!({"type": "image", "source": src}),
                cache_control,
            )]
        }
        Block::Document {
            source,
            title,
            context,
            citations,
            cache_control,
            ..
        } => {
            let src = match source {
                MediaSource::Base64 { mime, data } if mime == "application/pdf" => {
                    json!({"type": "base64", "media_type": mime, "data": data})
                }
                MediaSource::Base64 { mime, data } if mime.starts_with("text/") => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .map_err(|_| {
                            unsupported_block(b, i, j, "an undecodable text document", t.dialect)
                        })?;
                    json!({"type": "text", "media_type": "text/plain", "data": String::from_utf8_lossy(&bytes)})
                }
                MediaSource::Base64 { mime, .. } => {
                    return Err(unsupported_block(
                        b,
                        i,
                        j,
                        &format!("document type `{mime}`"),
                        t.dialect,
                    ))
                }
                MediaSource::Url(u) => json!({"type": "url", "url": u}),
                MediaSource::Text(text) => {
                    json!({"type": "text", "media_type": "text/plain", "data": text})
                }
                MediaSource::Content(blocks) => {
                    let mut content = Vec::new();
                    for (k, b) in blocks.iter().enumerate() {
                        content.extend(write_block(b, i, k, t)?);
                    }
                    json!({"type": "content", "content": content})
                }
                MediaSource::FileId {
                    dialect: Dialect::Anthropic,
                    id,
                } => json!({"type": "file", "file_id": id}),
                MediaSource::FileId { .. } => {
                    return Err(unsupported_block(
                        b,
                        i,
                        j,
                        "a file id of another provider",
                        t.dialect,
                    ))
                }
            };
            let mut o = json!({"type": "document", "source": src});
            if let Some(v) = title {
                o["title"] = json!(v);
            }
            if let Some(v) = context {
                o["context"] = json!(v);
            }
            if let Some(v) = citations {
                o["citations"] = v.clone();
            }
            vec![with_cache(o, cache_control)]
        }
        Block::Audio { .. } => return Err(unsupported_block(b, i, j, "audio input", t.dialect)),
        Block::ToolCall {
            id,
            name,
            args_json,
            cache_control,
            ..
        } => vec![with_cache(
            json!({"type": "tool_use", "id": id, "name": name, "input": args_object(args_json)}),
            cache_control,
        )],
        Block::ToolResult {
            call_id,
            content,
            is_error,
            cache_control,
            ..
        } => {
            let mut o = json!({"type": "tool_result", "tool_use_id": call_id});
            let mut parts = Vec::new();
            for (k, c) in content.iter().enumerate() {
                parts.extend(write_block(c, i, k, t)?);
            }
            if parts.len() == 1
                && parts[0]["type"] == "text"
                && parts[0].get("cache_control").is_none()
            {
                o["content"] = parts[0]["text"].clone();
            } else if !parts.is_empty() {
                o["content"] = Value::Array(parts);
            }
            if *is_error {
                o["is_error"] = json!(true);
            }
            vec![with_cache(o, cache_control)]
        }
        Block::Thinking { text, signature } => {
            // Pitfall 23: replay only signatures this upstream made.
            match signature
                .as_ref()
                .and_then(|s| s.valid_for(ORIGIN_ANTHROPIC, t.origin))
            {
                Some(sig) => vec![json!({"type": "thinking", "thinking": text, "signature": sig})],
                None => vec![],
            }
        }
        Block::RedactedThinking { data, origin } => {
            if origin == ORIGIN_ANTHROPIC || (!t.origin.is_empty() && origin == t.origin) {
                vec![json!({"type": "redacted_thinking", "data": data})]
            } else {
                vec![]
            }
        }
        Block::Opaque {
            dialect: Dialect::Anthropic,
            value,
        } => vec![value.clone()],
        Block::Opaque { .. } => vec![],
    })
}

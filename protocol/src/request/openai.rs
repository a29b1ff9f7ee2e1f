//! OpenAI Chat Completions requests (and OpenAI-compatible vendors, shaped by [`Capabilities`]).

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::{
    args_string, as_obj, budget_effort, data_url, get, idx, json_instruction, obj, opt_arr,
    opt_bool, opt_f64, opt_i64, opt_obj, opt_str, opt_u64, parse_data_url, str_list, sub,
    unsupported, unsupported_block, wrong_type, Obj, Target, WriteOut,
};
use crate::caps::Capabilities;
use crate::ir::{
    Block, MediaSource, Msg, OutputFormat, Request, Role, Signature, Tool, ToolChoice,
    ORIGIN_ANTHROPIC, ORIGIN_GEMINI,
};
use crate::{ApiError, Dialect};

/// Top-level fields this module maps; everything else goes to `extras`.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "thinking",
    "user",
    "functions",
    "function_call",
];

pub(super) fn parse(mut root: Obj) -> Result<Request, ApiError> {
    let mut req = Request {
        model: opt_str(&root, "model", "")?.unwrap_or_default().to_string(),
        stream: opt_bool(&root, "stream", "")?.unwrap_or(false),
        ..Request::default()
    };
    if let Some(so) = opt_obj(&root, "stream_options", "")? {
        req.stream_usage = opt_bool(so, "include_usage", "stream_options")?.unwrap_or(false);
    }

    // Sampling.
    let s = &mut req.sampling;
    s.max_tokens = match opt_u64(&root, "max_completion_tokens", "")? {
        Some(v) => Some(v),
        None => opt_u64(&root, "max_tokens", "")?,
    };
    s.temperature = opt_f64(&root, "temperature", "")?;
    s.top_p = opt_f64(&root, "top_p", "")?;
    s.top_k = opt_u64(&root, "top_k", "")?;
    s.stop = str_list(&root, "stop", "")?;
    s.seed = opt_i64(&root, "seed", "")?;
    s.presence_penalty = opt_f64(&root, "presence_penalty", "")?;
    s.frequency_penalty = opt_f64(&root, "frequency_penalty", "")?;
    s.n = opt_u64(&root, "n", "")?;
    s.logprobs = opt_bool(&root, "logprobs", "")?;
    s.top_logprobs = opt_u64(&root, "top_logprobs", "")?;

    // Reasoning.
    if let Some(e) = opt_str(&root, "reasoning_effort", "")? {
        req.reasoning.effort = Some(e.to_string());
        req.reasoning.enabled = Some(e != "none");
    }
    if let Some(t) = opt_obj(&root, "thinking", "")? {
        match opt_str(t, "type", "thinking")? {
            Some("enabled") => req.reasoning.enabled = Some(true),
            Some("disabled") => req.reasoning.enabled = Some(false),
            _ => {}
        }
    }

    req.user_id = opt_str(&root, "user", "")?.map(str::to_string);
    req.output_format = parse_response_format(&root)?;
    parse_tools(&root, &mut req)?;
    parse_messages(&root, &mut req)?;

    for k in KNOWN {
        root.remove(*k);
    }
    req.extras = root;
    Ok(req)
}

fn parse_response_format(root: &Obj) -> Result<Option<OutputFormat>, ApiError> {
    let Some(rf) = opt_obj(root, "response_format", "")? else {
        return Ok(None);
    };
    let p = "response_format";
    Ok(match opt_str(rf, "type", p)? {
        Some("json_object") => Some(OutputFormat::JsonObject),
        Some("json_schema") => {
            let js = opt_obj(rf, "json_schema", p)?.ok_or_else(|| {
                ApiError::invalid_param(
                    "response_format.json_schema",
                    "`response_format.json_schema` is required for type json_schema",
                )
            })?;
            let jp = "response_format.json_schema";
            Some(OutputFormat::JsonSchema {
                name: opt_str(js, "name", jp)?.map(str::to_string),
                description: opt_str(js, "description", jp)?.map(str::to_string),
                schema: get(js, "schema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
                strict: opt_bool(js, "strict", jp)?,
            })
        }
        Some("text") | None => None,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "response_format.type",
                format!("unknown response_format type `{other}`"),
            ))
        }
    })
}

fn parse_tools(root: &Obj, req: &mut Request) -> Result<(), ApiError> {
    if let Some(tools) = opt_arr(root, "tools", "")? {
        for (i, t) in tools.iter().enumerate() {
            let p = idx("tools", i);
            let t = as_obj(t, &p)?;
            match opt_str(t, "type", &p)?.unwrap_or("function") {
                "function" => {
                    let f = opt_obj(t, "function", &p)?.ok_or_else(|| {
                        ApiError::invalid_param(sub(&p, "function"), "`function` is required")
                    })?;
                    req.tools.push(parse_function(f, &sub(&p, "function"), t)?);
                }
                _ => req.tools.push(Tool {
                    name: opt_str(t, "name", &p)?.unwrap_or_default().to_string(),
                    description: None,
                    schema: None,
                    strict: None,
                    cache_control: None,
                    native: Some((Dialect::OpenAi, Value::Object(t.clone()))),
                }),
            }
        }
    } else if let Some(fs) = opt_arr(root, "functions", "")? {
        for (i, f) in fs.iter().enumerate() {
            let p = idx("functions", i);
            req.tools
                .push(parse_function(as_obj(f, &p)?, &p, &Map::new())?);
        }
    }

    let p = "tool_choice";
    req.tool_choice = match get(root, "tool_choice") {
        None => match get(root, "function_call") {
            Some(Value::String(s)) => match s.as_str() {
                "none" => Some(ToolChoice::None),
                _ => Some(ToolChoice::Auto),
            },
            Some(Value::Object(o)) => Some(ToolChoice::Tool(
                super::req_str(o, "name", "function_call")?.to_string(),
            )),
            _ => None,
        },
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            "none" => ToolChoice::None,
            other => {
                return Err(ApiError::invalid_param(
                    p,
                    format!("unknown tool_choice `{other}`"),
                ))
            }
        }),
        Some(Value::Object(o)) => match opt_str(o, "type", p)? {
            Some("function") | None => {
                let f = opt_obj(o, "function", p)?
                    .ok_or_else(|| ApiError::invalid_param("tool_choice.function", "required"))?;
                Some(ToolChoice::Tool(
                    super::req_str(f, "name", "tool_choice.function")?.to_string(),
                ))
            }
            Some("allowed_tools") => {
                let a = opt_obj(o, "allowed_tools", p)?.ok_or_else(|| {
                    ApiError::invalid_param("tool_choice.allowed_tools", "required")
                })?;
                let ap = "tool_choice.allowed_tools";
                let required = opt_str(a, "mode", ap)? == Some("required");
                let mut names = Vec::new();
                for (i, t) in opt_arr(a, "tools", ap)?.into_iter().flatten().enumerate() {
                    let tp = idx(&sub(ap, "tools"), i);
                    let t = as_obj(t, &tp)?;
                    let n = match opt_obj(t, "function", &tp)? {
                        Some(f) => opt_str(f, "name", &tp)?,
                        None => opt_str(t, "name", &tp)?,
                    };
                    names.extend(n.map(str::to_string));
                }
                Some(ToolChoice::Allowed { required, names })
            }
            Some(other) => {
                return Err(ApiError::invalid_param(
                    "tool_choice.type",
                    format!("unsupported tool_choice type `{other}`"),
                ))
            }
        },
        Some(_) => return Err(wrong_type(p, "a string or an object")),
    };
    req.parallel_tool_calls = opt_bool(root, "parallel_tool_calls", "")?;
    Ok(())
}

fn parse_function(f: &Obj, p: &str, outer: &Obj) -> Result<Tool, ApiError> {
    Ok(Tool {
        name: super::req_str(f, "name", p)?.to_string(),
        description: opt_str(f, "description", p)?.map(str::to_string),
        schema: get(f, "parameters").cloned(),
        strict: opt_bool(f, "strict", p)?,
        cache_control: get(outer, "cache_control")
            .or_else(|| get(f, "cache_control"))
            .cloned(),
        native: None,
    })
}

fn parse_messages(root: &Obj, req: &mut Request) -> Result<(), ApiError> {
    let msgs = opt_arr(root, "messages", "")?
        .ok_or_else(|| ApiError::invalid_param("messages", "`messages` is required"))?;
    let mut pending: Vec<Block> = Vec::new(); // tool results waiting for the next user turn
    let mut leading = true;
    for (i, m) in msgs.iter().enumerate() {
        let p = idx("messages", i);
        let m = as_obj(m, &p)?;
        let role = super::req_str(m, "role", &p)?;
        let cp = sub(&p, "content");
        match role {
            "system" | "developer" => {
                let blocks = parse_content(get(m, "content"), &cp)?;
                if leading {
                    req.developer_role |= role == "developer";
                    req.system.extend(blocks);
                } else {
                    flush(&mut pending, &mut req.messages);
                    req.messages.push(Msg {
                        role: Role::System,
                        blocks,
                    });
                }
            }
            "user" => {
                leading = false;
                let mut blocks = std::mem::take(&mut pending);
                blocks.extend(parse_content(get(m, "content"), &cp)?);
                req.messages.push(Msg {
                    role: Role::User,
                    blocks,
                });
            }
            "assistant" => {
                leading = false;
                flush(&mut pending, &mut req.messages);
                req.messages.push(Msg {
                    role: Role::Assistant,
                    blocks: parse_assistant(m, &p)?,
                });
            }
            "tool" | "function" => {
                leading = false;
                let (call_id, name) = if role == "tool" {
                    (
                        opt_str(m, "tool_call_id", &p)?
                            .unwrap_or_default()
                            .to_string(),
                        None,
                    )
                } else {
                    (String::new(), opt_str(m, "name", &p)?.map(str::to_string))
                };
                let content = parse_content(get(m, "content"), &cp)?;
                let name = name.or_else(|| req.call_name(&call_id).map(str::to_string));
                pending.push(Block::ToolResult {
                    call_id,
                    name,
                    content,
                    is_error: false,
                    cache_control: None,
                });
            }
            other => {
                return Err(ApiError::invalid_param(
                    sub(&p, "role"),
                    format!("unknown role `{other}`"),
                ))
            }
        }
    }
    flush(&mut pending, &mut req.messages);
    Ok(())
}

fn flush(pending: &mut Vec<Block>, msgs: &mut Vec<Msg>) {
    if !pending.is_empty() {
        msgs.push(Msg {
            role: Role::User,
            blocks: std::mem::take(pending),
        });
    }
}

/// `content`: a string or an array of parts.
fn parse_content(v: Option<&Value>, p: &str) -> Result<Vec<Block>, ApiError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Block::text(s.as_str())]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                out.extend(parse_part(part, &idx(p, j))?);
            }
            Ok(out)
        }
        Some(_) => Err(wrong_type(p, "a string or an array of content parts")),
    }
}

fn parse_part(part: &Value, p: &str) -> Result<Option<Block>, ApiError> {
    if let Value::String(s) = part {
        return Ok(Some(Block::text(s.as_str())));
    }
    let o = as_obj(part, p)?;
    let cache_control = get(o, "cache_control").cloned();
    Ok(Some(match super::req_str(o, "type", p)? {
        "text" | "input_text" => Block::Text {
            text: super::req_str(o, "text", p)?.to_string(),
            cache_control,
        },
        "refusal" => Block::text(super::req_str(o, "refusal", p)?),
        "image_url" | "input_image" => {
            let ip = sub(p, "image_url");
            let (url, detail) = match get(o, "image_url") {
                Some(Value::String(u)) => (u.as_str(), None),
                Some(Value::Object(io)) => (
                    super::req_str(io, "url", &ip)?,
                    opt_str(io, "detail", &ip)?.map(str::to_string),
                ),
                _ => return Err(ApiError::invalid_param(&ip, "`image_url.url` is required")),
            };
            Block::Image {
                source: url_source(url, &sub(&ip, "url"))?,
                detail,
                cache_control,
                path: Some(p.to_string()),
            }
        }
        "input_audio" => {
            let ap = sub(p, "input_audio");
            let a = opt_obj(o, "input_audio", p)?
                .ok_or_else(|| ApiError::invalid_param(&ap, "`input_audio` is required"))?;
            let format = opt_str(a, "format", &ap)?.unwrap_or("wav");
            Block::Audio {
                mime: format!("audio/{format}"),
                data: super::req_str(a, "data", &ap)?.to_string(),
                path: Some(p.to_string()),
            }
        }
        "file" => {
            let fp = sub(p, "file");
            let f = opt_obj(o, "file", p)?
                .ok_or_else(|| ApiError::invalid_param(&fp, "`file` is required"))?;
            let title = opt_str(f, "filename", &fp)?.map(str::to_string);
            let source = if let Some(d) = opt_str(f, "file_data", &fp)? {
                let (mime, data) = parse_data_url(d).ok_or_else(|| {
                    ApiError::invalid_param(
                        sub(&fp, "file_data"),
                        "`file_data` must be a data URL (data:<mime>;base64,<data>)",
                    )
                })?;
                MediaSource::Base64 { mime, data }
            } else if let Some(id) = opt_str(f, "file_id", &fp)? {
                MediaSource::FileId {
                    dialect: Dialect::OpenAi,
                    id: id.to_string(),
                }
            } else {
                return Err(ApiError::invalid_param(
                    &fp,
                    "`file` needs `file_data` or `file_id`",
                ));
            };
            Block::Document {
                source,
                title,
                context: None,
                citations: None,
                cache_control,
                path: Some(p.to_string()),
            }
        }
        other => {
            return Err(ApiError::invalid_param(
                sub(p, "type"),
                format!("unsupported content part type `{other}`"),
            ))
        }
    }))
}

/// An image URL: a strict `data:` URL or an http(s) URL.
fn url_source(url: &str, p: &str) -> Result<MediaSource, ApiError> {
    if url.starts_with("data:") {
        let (mime, data) = parse_data_url(url).ok_or_else(|| {
            ApiError::invalid_param(p, "malformed data URL (expected data:<mime>;base64,<data>)")
        })?;
        Ok(MediaSource::Base64 { mime, data })
    } else {
        Ok(MediaSource::Url(url.to_string()))
    }
}

fn parse_assistant(m: &Obj, p: &str) -> Result<Vec<Block>, ApiError> {
    let mut blocks = Vec::new();
    // Reasoning first. OpenRouter-style `reasoning_details` (the shape the response side emits
    // for OpenAI clients): `reasoning.text` entries accumulate text until one carries a
    // signature; `reasoning.encrypted` entries are redacted thinking, or, with an `id`, the
    // signature of that tool call (Gemini). The plain `reasoning_content` text fills in when the
    // details carry signatures only (streamed signatures arrive in text-less entries).
    let plain = match opt_str(m, "reasoning_content", p)? {
        Some(t) => Some(t),
        None => opt_str(m, "reasoning", p)?,
    }
    .filter(|t| !t.is_empty());
    let mut call_sigs: Vec<(String, Signature)> = Vec::new();
    let mut thinking: Vec<Block> = Vec::new();
    let mut acc = String::new();
    for (j, d) in opt_arr(m, "reasoning_details", p)?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let dp = idx(&sub(p, "reasoning_details"), j);
        let d = as_obj(d, &dp)?;
        match opt_str(d, "type", &dp)? {
            Some("reasoning.text") | Some("reasoning.summary") => {
                acc.push_str(
                    opt_str(d, "text", &dp)?
                        .or(opt_str(d, "summary", &dp)?)
                        .unwrap_or_default(),
                );
                if let Some(sig) = opt_str(d, "signature", &dp)?.filter(|s| !s.is_empty()) {
                    thinking.push(Block::Thinking {
                        text: std::mem::take(&mut acc),
                        signature: Some(Signature::from_wire(sig, ORIGIN_ANTHROPIC)),
                    });
                }
            }
            Some("reasoning.encrypted") => {
                let data = opt_str(d, "data", &dp)?.unwrap_or_default();
                match opt_str(d, "id", &dp)? {
                    Some(id) => {
                        call_sigs.push((id.to_string(), Signature::from_wire(data, ORIGIN_GEMINI)))
                    }
                    None => {
                        let sig = Signature::from_wire(data, ORIGIN_ANTHROPIC);
                        thinking.push(Block::RedactedThinking {
                            data: sig.value,
                            origin: sig.origin,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if !acc.is_empty() {
        thinking.push(Block::Thinking {
            text: acc,
            signature: None,
        });
    }
    if let Some(t) = plain {
        let mut texts = thinking.iter_mut().filter_map(|b| match b {
            Block::Thinking { text, .. } => Some(text),
            _ => None,
        });
        match (texts.next(), texts.next()) {
            (Some(first), None) if first.is_empty() => *first = t.to_string(),
            (None, _) => thinking.insert(
                0,
                Block::Thinking {
                    text: t.to_string(),
                    signature: None,
                },
            ),
            _ => {}
        }
    }
    blocks.extend(thinking);
    for b in parse_content(get(m, "content"), &sub(p, "content"))? {
        // An empty string next to tool calls means "no text" (pitfall 3).
        if !matches!(&b, Block::Text { text, .. } if text.is_empty()) {
            blocks.push(b);
        }
    }
    if let Some(r) = opt_str(m, "refusal", p)? {
        blocks.push(Block::text(r));
    }
    let tp = sub(p, "tool_calls");
    for (k, c) in opt_arr(m, "tool_calls", p)?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cp = idx(&tp, k);
        let c = as_obj(c, &cp)?;
        let f = opt_obj(c, "function", &cp)?.ok_or_else(|| {
            ApiError::invalid_param(sub(&cp, "function"), "`function` is required")
        })?;
        let fp = sub(&cp, "function");
        let signature = c
            .get("extra_content")
            .and_then(|e| e.get("google"))
            .and_then(|g| g.get("thought_signature"))
            .and_then(Value::as_str)
            .map(|s| Signature::from_wire(s, ORIGIN_GEMINI));
        blocks.push(Block::ToolCall {
            id: opt_str(c, "id", &cp)?.unwrap_or_default().to_string(),
            name: super::req_str(f, "name", &fp)?.to_string(),
            args_json: args_string(get(f, "arguments")),
            signature,
            cache_control: get(c, "cache_control").cloned(),
        });
    }
    for (id, sig) in call_sigs {
        for b in &mut blocks {
            if let Block::ToolCall {
                id: cid, signature, ..
            } = b
            {
                if *cid == id && signature.is_none() {
                    *signature = Some(sig);
                    break;
                }
            }
        }
    }
    if let Some(f) = opt_obj(m, "function_call", p)? {
        let fp = sub(p, "function_call");
        blocks.push(Block::ToolCall {
            id: String::new(),
            name: super::req_str(f, "name", &fp)?.to_string(),
            args_json: args_string(get(f, "arguments")),
            signature: None,
            cache_control: None,
        });
    }
    Ok(blocks)
}

// ---------------------------------------------------------------------------------------------
// Writer

pub(super) fn write(req: &Request, t: &Target, _out: &mut WriteOut) -> Result<Obj, ApiError> {
    let caps = t.caps;
    let same = req.source == Some(Dialect::OpenAi);
    let cache = caps.cache_control || same;
    let mut body = Map::new();
    body.insert("model".into(), json!(t.model));

    // Tools and tool choice.
    let mut tools: Vec<&Tool> = req.tools.iter().collect();
    let mut choice = req.tool_choice.clone();
    if let Some(ToolChoice::Allowed { required, names }) = &choice {
        if !same {
            tools.retain(|tool| names.contains(&tool.name));
            choice = Some(if *required {
                ToolChoice::Required
            } else {
                ToolChoice::Auto
            });
        }
    }
    if caps.tool_choice_auto_only {
        match choice.take() {
            Some(ToolChoice::None) => tools.clear(),
            Some(ToolChoice::Tool(n)) => {
                tools.retain(|tool| tool.name == n);
                choice = Some(ToolChoice::Auto);
            }
            Some(ToolChoice::Allowed { names, .. }) => {
                tools.retain(|tool| names.contains(&tool.name));
                choice = Some(ToolChoice::Auto);
            }
            Some(_) => choice = Some(ToolChoice::Auto),
            None => {}
        }
    }

    // Structured output.
    let mut json_hint: Option<String> = None;
    match &req.output_format {
        Some(OutputFormat::JsonObject) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
            if !same {
                // OpenAI and DeepSeek require the word "JSON" in the prompt for json_object.
                json_hint = Some(json_instruction(None));
            }
        }
        Some(OutputFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        }) => {
            if caps.structured_outputs {
                let mut js = Map::new();
                let name = name
                    .as_deref()
                    .map(|n| super::NameRules::for_dialect(Dialect::OpenAi).fit(n, false))
                    .unwrap_or_else(|| "structured_output".to_string());
                js.insert("name".into(), json!(name));
                if let Some(d) = description {
                    js.insert("description".into(), json!(d));
                }
                js.insert("schema".into(), schema.clone());
                if let Some(s) = strict {
                    js.insert("strict".into(), json!(s));
                }
                body.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": js}),
                );
            } else {
                body.insert("response_format".into(), json!({"type": "json_object"}));
                json_hint = Some(json_instruction(Some(schema)));
            }
        }
        None => {}
    }

    // Messages.
    let mut msgs: Vec<Value> = Vec::new();
    let system: Cow<'_, [Block]> = match json_hint {
        Some(h) => [req.system.as_slice(), &[Block::text(h)]].concat().into(),
        None => Cow::Borrowed(&req.system),
    };
    if !system.is_empty() {
        let role = if req.developer_role && caps.developer_role {
            "developer"
        } else {
            "system"
        };
        msgs.push(obj([
            ("role", json!(role)),
            ("content", text_content(&system, cache, "\n\n")),
        ]));
    }
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System => msgs.push(obj([
                (
                    "role",
                    json!(if req.developer_role && caps.developer_role {
                        "developer"
                    } else {
                        "system"
                    }),
                ),
                ("content", text_content(&m.blocks, cache, "\n\n")),
            ])),
            Role::User => write_user(&mut msgs, i, m, t, cache)?,
            Role::Assistant => msgs.push(write_assistant(m, t, caps, same)),
        }
    }
    body.insert("messages".into(), Value::Array(msgs));

    if !tools.is_empty() {
        let mut arr = Vec::new();
        for (i, tool) in tools.iter().enumerate() {
            arr.push(write_tool(tool, i, cache)?);
        }
        body.insert("tools".into(), Value::Array(arr));
        if let Some(c) = &choice {
            body.insert("tool_choice".into(), write_choice(c));
        }
        if let Some(p) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
        if caps.tool_stream_param && req.stream {
            body.insert("tool_stream".into(), json!(true));
        }
    }

    // Sampling.
    let s = &req.sampling;
    if let Some(m) = s.max_tokens {
        let k = if caps.max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(k.into(), json!(m));
    }
    put(&mut body, "temperature", s.temperature);
    put(&mut body, "top_p", s.top_p);
    if caps.top_k || same {
        put(&mut body, "top_k", s.top_k);
    }
    if !s.stop.is_empty() {
        body.insert("stop".into(), json!(s.stop));
    }
    put(&mut body, "seed", s.seed);
    put(&mut body, "presence_penalty", s.presence_penalty);
    put(&mut body, "frequency_penalty", s.frequency_penalty);
    put(&mut body, "n", s.n);
    put(&mut body, "logprobs", s.logprobs);
    put(&mut body, "top_logprobs", s.top_logprobs);

    // Reasoning.
    let on = req.reasoning_on();
    if caps.thinking_param {
        if let Some(on) = on {
            body.insert(
                "thinking".into(),
                json!({"type": if on { "enabled" } else { "disabled" }}),
            );
        }
    }
    if caps.reasoning_effort {
        let r = &req.reasoning;
        let effort = match on {
            Some(true) => r
                .effort
                .clone()
                .or_else(|| r.budget.map(|b| budget_effort(b).to_string())),
            Some(false) => r.effort.clone().filter(|e| e == "none"),
            None => r.effort.clone(),
        };
        if let Some(e) = effort {
            body.insert("reasoning_effort".into(), json!(e));
        }
    }

    if let Some(u) = &req.user_id {
        body.insert("user".into(), json!(u));
    }

    if req.stream {
        body.insert("stream".into(), json!(true));
        if caps.stream_options {
            let mut so = match req.extras.get("stream_options") {
                Some(Value::Object(o)) if same => o.clone(),
                _ => Map::new(),
            };
            so.insert("include_usage".into(), json!(true));
            body.insert("stream_options".into(), Value::Object(so));
        }
    }

    if same {
        for (k, v) in &req.extras {
            if k != "stream_options" && !body.contains_key(k) {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(body)
}

fn put<T: serde::Serialize>(body: &mut Obj, k: &str, v: Option<T>) {
    if let Some(v) = v {
        body.insert(k.into(), json!(v));
    }
}

/// Text blocks as a content string, or as text parts when cache markers must survive.
fn text_content(blocks: &[Block], cache: bool, sep: &str) -> Value {
    let texts: Vec<&Block> = blocks
        .iter()
        .filter(|b| matches!(b, Block::Text { .. }))
        .collect();
    if cache
        && texts.iter().any(|b| {
            matches!(
                b,
                Block::Text {
                    cache_control: Some(_),
                    ..
                }
            )
        })
    {
        Value::Array(texts.iter().map(|b| text_part(b, cache)).collect())
    } else {
        Value::String(crate::ir::join_text(blocks, sep))
    }
}

fn text_part(b: &Block, cache: bool) -> Value {
    let Block::Text {
        text,
        cache_control,
    } = b
    else {
        return Value::Null;
    };
    let mut o = json!({"type": "text", "text": text});
    if let (true, Some(c)) = (cache, cache_control) {
        o["cache_control"] = c.clone();
    }
    o
}

/// A user turn: one `tool` message per result first, then a user message with the rest (images
/// from tool results go there too, since tool messages carry text only).
fn write_user(
    msgs: &mut Vec<Value>,
    i: usize,
    m: &Msg,
    t: &Target,
    cache: bool,
) -> Result<(), ApiError> {
    let mut parts: Vec<Value> = Vec::new(); // images of tool results first, then the rest
    let mut rest: Vec<&Block> = Vec::new();
    for b in &m.blocks {
        let Block::ToolResult {
            call_id,
            content,
            is_error,
            cache_control,
            ..
        } = b
        else {
            rest.push(b);
            continue;
        };
        let mut text = crate::ir::join_text(content, "\n");
        if *is_error && !text.to_ascii_lowercase().starts_with("error") {
            text = format!("Error: {text}");
        }
        for (k, c) in content.iter().enumerate() {
            if !matches!(c, Block::Text { .. }) {
                parts.extend(write_part(c, i, k, t, cache)?);
            }
        }
        // A cache marker on the result (Claude Code marks the newest block) survives as a part.
        let marker = cache_control.as_ref().or_else(|| {
            content.iter().rev().find_map(|c| match c {
                Block::Text { cache_control, .. } => cache_control.as_ref(),
                _ => None,
            })
        });
        let content = match (cache, marker) {
            (true, Some(c)) => json!([{"type": "text", "text": text, "cache_control": c}]),
            _ => json!(text),
        };
        msgs.push(obj([
            ("role", json!("tool")),
            ("tool_call_id", json!(call_id)),
            ("content", content),
        ]));
    }
    let plain = |b: &Block| matches!(b, Block::Text { cache_control, .. } if !cache || cache_control.is_none());
    if parts.is_empty() && rest.len() == 1 && plain(rest[0]) {
        msgs.push(json!({"role": "user", "content": rest[0].as_text()}));
        return Ok(());
    }
    let n_result_parts = parts.len();
    for (j, b) in m.blocks.iter().enumerate() {
        if !b.is_tool_result() {
            parts.extend(write_part(b, i, j, t, cache)?);
        }
    }
    if !parts.is_empty() {
        msgs.push(obj([
            ("role", json!("user")),
            ("content", Value::Array(parts)),
        ]));
    } else if m.blocks.is_empty() || (n_result_parts == 0 && !rest.is_empty()) {
        msgs.push(json!({"role": "user", "content": ""}));
    }
    Ok(())
}

fn write_part(
    b: &Block,
    i: usize,
    j: usize,
    t: &Target,
    cache: bool,
) -> Result<Option<Value>, ApiError> {
    let with_cache = |mut v: Value, c: &Option<Value>| {
        if let (true, Some(c)) = (cache, c) {
            v["cache_control"] = c.clone();
        }
        v
    };
    Ok(Some(match b {
        Block::Text { .. } => text_part(b, cache),
        Block::Image {
            source,
            detail,
            cache_control,
            ..
        } => {
            let url = match source {
                MediaSource::Base64 { mime, data } => data_url(mime, data),
                MediaSource::Url(u) => u.clone(),
                _ => return Err(unsupported_block(b, i, j, "this image source", t.dialect)),
            };
            let mut iu = json!({ "url": url });
            if let Some(d) = detail {
                iu["detail"] = json!(d);
            }
            with_cache(json!({"type": "image_url", "image_url": iu}), cache_control)
        }
        Block::Document {
            source,
            title,
            cache_control,
            ..
        } => {
            let mut f = Map::new();
            match source {
                MediaSource::Base64 { mime, data } => {
                    f.insert("file_data".into(), json!(data_url(mime, data)));
                    f.insert(
                        "filename".into(),
                        json!(title.clone().unwrap_or_else(|| default_filename(mime))),
                    );
                }
                MediaSource::FileId {
                    dialect: Dialect::OpenAi,
                    id,
                } => {
                    f.insert("file_id".into(), json!(id));
                    if let Some(t) = title {
                        f.insert("filename".into(), json!(t));
                    }
                }
                MediaSource::Text(text) => {
                    return Ok(Some(json!({"type": "text", "text": titled(title, text)})))
                }
                MediaSource::Content(blocks) => {
                    return Ok(Some(json!({
                        "type": "text",
                        "text": titled(title, &crate::ir::join_text(blocks, "\n"))
                    })))
                }
                _ => {
                    return Err(unsupported_block(
                        b,
                        i,
                        j,
                        "this document source",
                        t.dialect,
                    ))
                }
            }
            with_cache(json!({"type": "file", "file": f}), cache_control)
        }
        Block::Audio { mime, data, .. } => {
            let format = mime.strip_prefix("audio/").unwrap_or("wav");
            let format = match format {
                "mpeg" | "mp3" => "mp3",
                "wav" | "x-wav" | "wave" => "wav",
                other => other,
            };
            json!({"type": "input_audio", "input_audio": {"data": data, "format": format}})
        }
        Block::ToolCall { .. }
        | Block::ToolResult { .. }
        | Block::Thinking { .. }
        | Block::RedactedThinking { .. }
        | Block::Opaque { .. } => return Ok(None),
    }))
}

fn titled(title: &Option<String>, text: &str) -> String {
    match title {
        Some(t) => format!("{t}\n\n{text}"),
        None => text.to_string(),
    }
}

fn default_filename(mime: &str) -> String {
    match mime {
        "application/pdf" => "document.pdf".into(),
        "text/plain" => "document.txt".into(),
        _ => "file".into(),
    }
}

fn write_assistant(m: &Msg, t: &Target, caps: &Capabilities, same: bool) -> Value {
    let mut o = Map::new();
    o.insert("role".into(), json!("assistant"));
    let text: Vec<&str> = m.blocks.iter().filter_map(Block::as_text).collect();
    let reasoning: Vec<&str> = m
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Thinking { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let calls: Vec<Value> = m
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolCall {
                id,
                name,
                args_json,
                signature,
                ..
            } => {
                let args = if args_json.trim().is_empty() {
                    "{}"
                } else {
                    args_json.as_str()
                };
                let mut c = json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                });
                if let Some(sig) = signature
                    .as_ref()
                    .and_then(|s| s.valid_for(ORIGIN_GEMINI, t.origin))
                {
                    c["extra_content"] = json!({"google": {"thought_signature": sig}});
                }
                Some(c)
            }
            _ => None,
        })
        .collect();
    if text.is_empty() {
        o.insert(
            "content".into(),
            if calls.is_empty() {
                json!("")
            } else {
                Value::Null
            },
        );
    } else {
        o.insert("content".into(), Value::String(text.join("\n\n")));
    }
    if caps.reasoning_echo || (same && !reasoning.is_empty()) {
        o.insert(
            "reasoning_content".into(),
            Value::String(reasoning.join("\n\n")),
        );
    }
    // Reasoning artifacts this very upstream minted (an OpenRouter-style proxy): hand them back.
    let own = |origin: &str| !t.origin.is_empty() && origin == t.origin;
    let mut details = Vec::new();
    for b in &m.blocks {
        match b {
            Block::Thinking {
                text,
                signature: Some(sig),
            } if own(&sig.origin) => details
                .push(json!({"type": "reasoning.text", "text": text, "signature": sig.value})),
            Block::RedactedThinking { data, origin } if own(origin) => {
                details.push(json!({"type": "reasoning.encrypted", "data": data}))
            }
            Block::ToolCall {
                id,
                signature: Some(sig),
                ..
            } if own(&sig.origin) => {
                details.push(json!({"type": "reasoning.encrypted", "data": sig.value, "id": id}))
            }
            _ => {}
        }
    }
    if !details.is_empty() {
        for (k, d) in details.iter_mut().enumerate() {
            d["index"] = json!(k);
        }
        o.insert("reasoning_details".into(), Value::Array(details));
    }
    if !calls.is_empty() {
        o.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(o)
}

fn write_tool(tool: &Tool, i: usize, cache: bool) -> Result<Value, ApiError> {
    if let Some((d, v)) = &tool.native {
        return match d {
            Dialect::OpenAi => Ok(v.clone()),
            _ => Err(unsupported(&idx("tools", i), Dialect::OpenAi)),
        };
    }
    let mut f = Map::new();
    f.insert("name".into(), json!(tool.name));
    if let Some(d) = &tool.description {
        f.insert("description".into(), json!(d));
    }
    if let Some(s) = &tool.schema {
        f.insert("parameters".into(), s.clone());
    }
    if let Some(s) = tool.strict {
        f.insert("strict".into(), json!(s));
    }
    let mut o = json!({"type": "function", "function": f});
    if let (true, Some(c)) = (cache, &tool.cache_control) {
        o["cache_control"] = c.clone();
    }
    Ok(o)
}

fn write_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::Required => json!("required"),
        ToolChoice::None => json!("none"),
        ToolChoice::Tool(n) => json!({"type": "function", "function": {"name": n}}),
        ToolChoice::Allowed { required, names } => json!({
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": if *required { "required" } else { "auto" },
                "tools": names.iter().map(|n| json!({"type": "function", "function": {"name": n}})).collect::<Vec<_>>(),
            }
        }),
    }
}

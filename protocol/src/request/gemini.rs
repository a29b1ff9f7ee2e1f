//! Gemini `generateContent` requests (v1beta REST, camelCase; snake_case keys are accepted too).

use serde_json::{json, Map, Value};

use super::{
    args_object, args_string, as_obj, effort_budget, get, idx, json_instruction, merge_same_role,
    unsupported, unsupported_block, wrong_type, Obj, Target, WriteOut,
};
use crate::ir::{
    Block, MediaSource, Msg, OutputFormat, Request, Role, Signature, Tool, ToolChoice,
    ORIGIN_GEMINI,
};
use crate::{ApiError, Dialect};

/// The sentinel Google documents for function calls whose thought signature is unknown.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Prefix of ids synthesized for calls that had none (not sent back to Gemini).
const SYNTH_ID: &str = "gcall_";

const KNOWN: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "generationConfig",
    "generation_config",
];

/// `fooBar` → `foo_bar`.
fn snake(k: &str) -> String {
    let mut s = String::with_capacity(k.len() + 4);
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// A present field under its camelCase or snake_case name.
fn g<'a>(m: &'a Obj, camel: &str) -> Option<&'a Value> {
    get(m, camel).or_else(|| get(m, &snake(camel)))
}

fn g_obj<'a>(m: &'a Obj, k: &str, p: &str) -> Result<Option<&'a Obj>, ApiError> {
    g(m, k).map(|v| as_obj(v, &super::sub(p, k))).transpose()
}

fn g_str<'a>(m: &'a Obj, k: &str, p: &str) -> Result<Option<&'a str>, ApiError> {
    g(m, k)
        .map(|v| {
            v.as_str()
                .ok_or_else(|| wrong_type(&super::sub(p, k), "a string"))
        })
        .transpose()
}

fn g_arr<'a>(m: &'a Obj, k: &str, p: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
    g(m, k)
        .map(|v| {
            v.as_array()
                .ok_or_else(|| wrong_type(&super::sub(p, k), "an array"))
        })
        .transpose()
}

fn g_f64(m: &Obj, k: &str, p: &str) -> Result<Option<f64>, ApiError> {
    g(m, k)
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| wrong_type(&super::sub(p, k), "a number"))
        })
        .transpose()
}

fn g_i64(m: &Obj, k: &str, p: &str) -> Result<Option<i64>, ApiError> {
    g(m, k)
        .map(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| wrong_type(&super::sub(p, k), "an integer"))
        })
        .transpose()
}

fn g_bool(m: &Obj, k: &str, p: &str) -> Result<Option<bool>, ApiError> {
    g(m, k)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| wrong_type(&super::sub(p, k), "a boolean"))
        })
        .transpose()
}

fn nonneg(v: Option<i64>, p: &str) -> Result<Option<u64>, ApiError> {
    v.map(|v| u64::try_from(v).map_err(|_| wrong_type(p, "a non-negative integer")))
        .transpose()
}

pub(super) fn parse(mut root: Obj) -> Result<Request, ApiError> {
    let mut req = Request {
        model: get(&root, "model")
            .and_then(Value::as_str)
            .map(|m| m.trim_start_matches("models/").to_string())
            .unwrap_or_default(),
        ..Request::default()
    };

    if let Some(si) = g_obj(&root, "systemInstruction", "")? {
        for (i, part) in g_arr(si, "parts", "systemInstruction")?
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = idx("systemInstruction.parts", i);
            if let Some(t) = g_str(as_obj(part, &p)?, "text", &p)? {
                req.system.push(Block::text(t));
            }
        }
    }

    parse_tools(&root, &mut req)?;
    let gen_extras = parse_generation_config(&root, &mut req)?;

    let contents = g_arr(&root, "contents", "")?
        .ok_or_else(|| ApiError::invalid_param("contents", "`contents` is required"))?;
    for (i, c) in contents.iter().enumerate() {
        let p = idx("contents", i);
        let c = as_obj(c, &p)?;
        let role = match g_str(c, "role", &p)?.unwrap_or("user") {
            "model" | "assistant" => Role::Assistant,
            "user" | "function" | "tool" => Role::User,
            other => {
                return Err(ApiError::invalid_param(
                    super::sub(&p, "role"),
                    format!("role must be `user` or `model`, got `{other}`"),
                ))
            }
        };
        let mut blocks = Vec::new();
        for (j, part) in g_arr(c, "parts", &p)?.into_iter().flatten().enumerate() {
            parse_part(part, &idx(&super::sub(&p, "parts"), j), &mut blocks)?;
        }
        req.messages.push(Msg { role, blocks });
    }
    assign_ids(&mut req);

    for k in KNOWN {
        root.remove(*k);
    }
    req.extras = root;
    if !gen_extras.is_empty() {
        req.extras
            .insert("generationConfig".into(), Value::Object(gen_extras));
    }
    Ok(req)
}

fn parse_part(part: &Value, p: &str, out: &mut Vec<Block>) -> Result<(), ApiError> {
    let o = as_obj(part, p)?;
    let sig = g_str(o, "thoughtSignature", p)?
        .filter(|s| !s.is_empty())
        .map(|s| Signature::from_wire(s, ORIGIN_GEMINI));
    if let Some(text) = g_str(o, "text", p)? {
        if g_bool(o, "thought", p)? == Some(true) || (text.is_empty() && sig.is_some()) {
            out.push(Block::Thinking {
                text: text.to_string(),
                signature: sig,
            });
        } else {
            if sig.is_some() {
                out.push(Block::Thinking {
                    text: String::new(),
                    signature: sig,
                });
            }
            out.push(Block::text(text));
        }
        return Ok(());
    }
    if let Some(d) = g_obj(o, "inlineData", p)? {
        let dp = super::sub(p, "inlineData");
        let mime = g_str(d, "mimeType", &dp)?.unwrap_or("application/octet-stream");
        let data = g_str(d, "data", &dp)?.unwrap_or_default().to_string();
        out.push(media_block(
            mime,
            MediaSource::Base64 {
                mime: mime.to_ascii_lowercase(),
                data: data.clone(),
            },
            data,
            p,
        ));
        return Ok(());
    }
    if let Some(d) = g_obj(o, "fileData", p)? {
        let dp = super::sub(p, "fileData");
        let mime = g_str(d, "mimeType", &dp)?.unwrap_or("application/octet-stream");
        let uri = g_str(d, "fileUri", &dp)?.unwrap_or_default().to_string();
        out.push(media_block(mime, MediaSource::Url(uri), String::new(), p));
        return Ok(());
    }
    if let Some(fc) = g_obj(o, "functionCall", p)? {
        let fp = super::sub(p, "functionCall");
        out.push(Block::ToolCall {
            id: g_str(fc, "id", &fp)?.unwrap_or_default().to_string(),
            name: super::req_str(fc, "name", &fp)?.to_string(),
            args_json: args_string(g(fc, "args")),
            signature: sig,
            cache_control: None,
        });
        return Ok(());
    }
    if let Some(fr) = g_obj(o, "functionResponse", p)? {
        let fp = super::sub(p, "functionResponse");
        let (content, is_error) = response_content(g(fr, "response"));
        let mut content = content;
        for (k, rp) in g_arr(fr, "parts", &fp)?.into_iter().flatten().enumerate() {
            parse_part(rp, &idx(&super::sub(&fp, "parts"), k), &mut content)?;
        }
        out.push(Block::ToolResult {
            call_id: g_str(fr, "id", &fp)?.unwrap_or_default().to_string(),
            name: Some(super::req_str(fr, "name", &fp)?.to_string()),
            content,
            is_error,
            cache_control: None,
        });
        return Ok(());
    }
    // executableCode, codeExecutionResult, videoMetadata…: Gemini only.
    out.push(Block::Opaque {
        dialect: Dialect::Gemini,
        value: part.clone(),
    });
    Ok(())
}

/// `functionResponse.response` as result content: `{"output": s}` / `{"error": s}` unwrap to
/// text; other objects become their JSON text.
fn response_content(r: Option<&Value>) -> (Vec<Block>, bool) {
    let Some(Value::Object(o)) = r else {
        return match r {
            None => (vec![], false),
            Some(v) => (vec![Block::text(v.to_string())], false),
        };
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if o.len() == 1 {
        if let Some(v) = o.get("output") {
            return (vec![Block::text(text(v))], false);
        }
        if let Some(v) = o.get("error") {
            return (vec![Block::text(text(v))], true);
        }
    }
    (
        vec![Block::text(Value::Object(o.clone()).to_string())],
        false,
    )
}

fn media_block(mime: &str, source: MediaSource, data: String, path: &str) -> Block {
    let mime = mime.to_ascii_lowercase();
    if mime.starts_with("image/") {
        Block::Image {
            source,
            detail: None,
            cache_control: None,
            path: Some(path.to_string()),
        }
    } else if mime.starts_with("audio/") && !data.is_empty() {
        Block::Audio {
            mime,
            data,
            path: Some(path.to_string()),
        }
    } else {
        Block::Document {
            source,
            title: None,
            context: None,
            citations: None,
            cache_control: None,
            path: Some(path.to_string()),
        }
    }
}

/// Calls without ids get `gcall_<msg>_<k>`; responses without ids take the id of the first
/// unanswered call of the same name in the preceding model turn.
fn assign_ids(req: &mut Request) {
    let mut open: Vec<(String, String)> = Vec::new();
    for (i, m) in req.messages.iter_mut().enumerate() {
        match m.role {
            Role::Assistant => {
                open.clear();
                let mut k = 0;
                for b in &mut m.blocks {
                    if let Block::ToolCall { id, name, .. } = b {
                        if id.is_empty() {
                            *id = format!("{SYNTH_ID}{i}_{k}");
                        }
                        k += 1;
                        open.push((id.clone(), name.clone()));
                    }
                }
            }
            _ => {
                for b in &mut m.blocks {
                    if let Block::ToolResult {
                        call_id,
                        name: Some(name),
                        ..
                    } = b
                    {
                        if call_id.is_empty() {
                            if let Some(pos) = open.iter().position(|(_, n)| n == name) {
                                *call_id = open.remove(pos).0;
                            }
                        } else {
                            open.retain(|(id, _)| id != call_id);
                        }
                    }
                }
            }
        }
    }
}

fn parse_tools(root: &Obj, req: &mut Request) -> Result<(), ApiError> {
    for (i, t) in g_arr(root, "tools", "")?.into_iter().flatten().enumerate() {
        let p = idx("tools", i);
        let o = as_obj(t, &p)?;
        let decls = g_arr(o, "functionDeclarations", &p)?;
        for (k, d) in decls.into_iter().flatten().enumerate() {
            let dp = idx(&super::sub(&p, "functionDeclarations"), k);
            let d = as_obj(d, &dp)?;
            let schema = match g(d, "parametersJsonSchema") {
                Some(s) => Some(s.clone()),
                None => g(d, "parameters").map(openapi_to_json_schema),
            };
            req.tools.push(Tool {
                name: super::req_str(d, "name", &dp)?.to_string(),
                description: g_str(d, "description", &dp)?.map(str::to_string),
                schema,
                strict: None,
                cache_control: None,
                native: None,
            });
        }
        let others: Map<String, Value> = o
            .iter()
            .filter(|(k, _)| *k != "functionDeclarations" && *k != "function_declarations")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !others.is_empty() {
            req.tools.push(Tool {
                name: others.keys().next().cloned().unwrap_or_default(),
                description: None,
                schema: None,
                strict: None,
                cache_control: None,
                native: Some((Dialect::Gemini, Value::Object(others))),
            });
        }
    }
    if let Some(tc) = g_obj(root, "toolConfig", "")? {
        if let Some(fc) = g_obj(tc, "functionCallingConfig", "toolConfig")? {
            let p = "toolConfig.functionCallingConfig";
            let names: Vec<String> = g_arr(fc, "allowedFunctionNames", p)?
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            req.tool_choice = match g_str(fc, "mode", p)?
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                Some("NONE") => Some(ToolChoice::None),
                Some("ANY") => Some(match names.len() {
                    0 => ToolChoice::Required,
                    1 => ToolChoice::Tool(names[0].clone()),
                    _ => ToolChoice::Allowed {
                        required: true,
                        names,
                    },
                }),
                Some("AUTO") | Some("VALIDATED") | Some("MODE_UNSPECIFIED") | None => {
                    if names.is_empty() {
                        Some(ToolChoice::Auto)
                    } else {
                        Some(ToolChoice::Allowed {
                            required: false,
                            names,
                        })
                    }
                }
                Some(other) => {
                    return Err(ApiError::invalid_param(
                        "toolConfig.functionCallingConfig.mode",
                        format!("unknown mode `{other}`"),
                    ))
                }
            };
        }
    }
    Ok(())
}

/// Gemini's OpenAPI-subset schema (`type: "OBJECT"`…) as JSON Schema (lower-case types,
/// `nullable` folded into the type).
fn openapi_to_json_schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            let nullable = o.get("nullable").and_then(Value::as_bool) == Some(true);
            for (k, v) in o {
                match k.as_str() {
                    "nullable" => {}
                    "type" => {
                        let t = v.as_str().map(str::to_ascii_lowercase);
                        out.insert(
                            k.clone(),
                            match (t, nullable) {
                                (Some(t), true) => json!([t, "null"]),
                                (Some(t), false) => json!(t),
                                (None, _) => v.clone(),
                            },
                        );
                    }
                    "properties" => {
                        let props = v
                            .as_object()
                            .map(|ps| {
                                ps.iter()
                                    .map(|(n, s)| (n.clone(), openapi_to_json_schema(s)))
                                    .collect::<Map<_, _>>()
                            })
                            .map(Value::Object)
                            .unwrap_or_else(|| v.clone());
                        out.insert(k.clone(), props);
                    }
                    _ => {
                        out.insert(k.clone(), openapi_to_json_schema(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(openapi_to_json_schema).collect()),
        other => other.clone(),
    }
}

/// Fills sampling, reasoning and output format; returns the fields it did not map.
fn parse_generation_config(root: &Obj, req: &mut Request) -> Result<Obj, ApiError> {
    let Some(gc) = g_obj(root, "generationConfig", "")? else {
        return Ok(Map::new());
    };
    let p = "generationConfig";
    let s = &mut req.sampling;
    s.temperature = g_f64(gc, "temperature", p)?;
    s.top_p = g_f64(gc, "topP", p)?;
    s.top_k = nonneg(g_i64(gc, "topK", p)?, "generationConfig.topK")?;
    s.max_tokens = nonneg(
        g_i64(gc, "maxOutputTokens", p)?,
        "generationConfig.maxOutputTokens",
    )?;
    s.stop = match g(gc, "stopSequences") {
        None => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(_) => return Err(wrong_type("generationConfig.stopSequences", "an array")),
    };
    s.n = nonneg(
        g_i64(gc, "candidateCount", p)?,
        "generationConfig.candidateCount",
    )?;
    s.seed = g_i64(gc, "seed", p)?;
    s.presence_penalty = g_f64(gc, "presencePenalty", p)?;
    s.frequency_penalty = g_f64(gc, "frequencyPenalty", p)?;
    s.logprobs = g_bool(gc, "responseLogprobs", p)?;
    s.top_logprobs = nonneg(g_i64(gc, "logprobs", p)?, "generationConfig.logprobs")?;

    if let Some(tc) = g_obj(gc, "thinkingConfig", p)? {
        let tp = "generationConfig.thinkingConfig";
        let r = &mut req.reasoning;
        r.include_thoughts = g_bool(tc, "includeThoughts", tp)?;
        match g_i64(tc, "thinkingBudget", tp)? {
            Some(0) => r.enabled = Some(false),
            Some(b) if b < 0 => r.enabled = Some(true),
            Some(b) => {
                r.enabled = Some(true);
                r.budget = Some(b as u64);
            }
            None => {}
        }
        if let Some(l) = g_str(tc, "thinkingLevel", tp)? {
            let l = l.to_ascii_lowercase();
            if l != "thinking_level_unspecified" {
                r.enabled = Some(true);
                r.effort = Some(l);
            }
        }
    }

    let mime = g_str(gc, "responseMimeType", p)?;
    let schema = g(gc, "responseJsonSchema")
        .cloned()
        .or_else(|| g(gc, "responseSchema").map(openapi_to_json_schema));
    let mut consumed: Vec<&str> = vec![
        "temperature",
        "topP",
        "topK",
        "maxOutputTokens",
        "stopSequences",
        "candidateCount",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "thinkingConfig",
    ];
    if mime == Some("application/json") {
        req.output_format = Some(match schema {
            Some(schema) => OutputFormat::JsonSchema {
                name: None,
                description: None,
                schema,
                strict: None,
            },
            None => OutputFormat::JsonObject,
        });
        consumed.extend(["responseMimeType", "responseJsonSchema", "responseSchema"]);
    }
    let consumed: Vec<String> = consumed
        .iter()
        .flat_map(|k| [k.to_string(), snake(k)])
        .collect();
    Ok(gc
        .iter()
        .filter(|(k, _)| !consumed.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Writer

/// Older Gemini models (1.x, 2.0) lack `parametersJsonSchema`/`responseJsonSchema` and the
/// thought-signature machinery.
fn legacy_model(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("gemini-1") || m.contains("gemini-2.0") || m.contains("gemini-pro-vision")
}

fn pre_gemini3(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("gemini-1") || m.contains("gemini-2")
}

pub(super) fn write(req: &Request, t: &Target, _out: &mut WriteOut) -> Result<Obj, ApiError> {
    let same = req.source == Some(Dialect::Gemini);
    let legacy = legacy_model(t.model);
    let mut body = Map::new();

    // System instruction: leading system blocks plus hoisted mid-conversation system messages.
    let mut sys_parts: Vec<Value> = Vec::new();
    let mut push_sys = |b: &Block| {
        if let Some(text) = b.as_text().filter(|s| !s.is_empty()) {
            sys_parts.push(json!({ "text": text }));
        }
    };
    req.system.iter().for_each(&mut push_sys);
    for m in req.messages.iter().filter(|m| m.role == Role::System) {
        m.blocks.iter().for_each(&mut push_sys);
    }
    if !same {
        if let Some(OutputFormat::JsonObject) = &req.output_format {
            push_sys(&Block::text(json_instruction(None)));
        }
    }
    if !sys_parts.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": sys_parts }));
    }

    // Contents.
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        if m.role == Role::System {
            continue;
        }
        let parts = write_parts(req, &m.blocks, i, t)?;
        turns.push((m.role, parts));
    }
    let mut turns = merge_same_role(turns, |p| p.get("functionResponse").is_some());
    if turns.first().is_some_and(|(r, _)| *r == Role::Assistant) {
        turns.insert(
            0,
            (
                Role::User,
                vec![json!({ "text": super::anthropic::PLACEHOLDER })],
            ),
        );
    }
    if turns.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` must contain at least one non-empty message",
        ));
    }
    if !pre_gemini3(t.model) {
        for (role, parts) in &mut turns {
            if *role != Role::Assistant {
                continue;
            }
            // Pitfall 26: the first call of each model turn needs a signature.
            if let Some(p) = parts.iter_mut().find(|p| p.get("functionCall").is_some()) {
                if p.get("thoughtSignature").is_none() {
                    p["thoughtSignature"] = json!(SKIP_SIGNATURE);
                }
            }
        }
    }
    body.insert(
        "contents".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(r, parts)| {
                    json!({"role": if r == Role::Assistant { "model" } else { "user" }, "parts": parts})
                })
                .collect(),
        ),
    );

    // Tools.
    let mut choice = req.tool_choice.clone();
    let mut allowed_filter: Option<Vec<String>> = None;
    if let Some(ToolChoice::Allowed {
        required: false,
        names,
    }) = &choice
    {
        allowed_filter = Some(names.clone());
        choice = Some(ToolChoice::Auto);
    }
    let mut decls = Vec::new();
    let mut native = Vec::new();
    for (i, tool) in req.tools.iter().enumerate() {
        if let Some((d, v)) = &tool.native {
            if *d != Dialect::Gemini {
                return Err(unsupported(&idx("tools", i), Dialect::Gemini));
            }
            native.push(v.clone());
            continue;
        }
        if allowed_filter
            .as_ref()
            .is_some_and(|a| !a.contains(&tool.name))
        {
            continue;
        }
        let mut d = json!({ "name": tool.name });
        if let Some(desc) = &tool.description {
            d["description"] = json!(desc);
        }
        if let Some(s) = &tool.schema {
            if legacy {
                d["parameters"] = sanitize_schema(s);
            } else {
                d["parametersJsonSchema"] = s.clone();
            }
        }
        decls.push(d);
    }
    let mut tools = Vec::new();
    if !decls.is_empty() {
        tools.push(json!({ "functionDeclarations": decls }));
    }
    tools.extend(native);
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        let fcc = match &choice {
            Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
            Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
            Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
            Some(ToolChoice::Tool(n)) => Some(json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            Some(ToolChoice::Allowed { names, .. }) => {
                Some(json!({"mode": "ANY", "allowedFunctionNames": names}))
            }
            None => None,
        };
        if let Some(f) = fcc {
            body.insert("toolConfig".into(), json!({ "functionCallingConfig": f }));
        }
    }

    // Generation config.
    let mut gc = match req.extras.get("generationConfig") {
        Some(Value::Object(o)) if same => o.clone(),
        _ => Map::new(),
    };
    let s = &req.sampling;
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            gc.insert(k.into(), v);
        }
    };
    put("temperature", s.temperature.map(|v| json!(v)));
    put("topP", s.top_p.map(|v| json!(v)));
    put("topK", s.top_k.map(|v| json!(v)));
    put("maxOutputTokens", s.max_tokens.map(|v| json!(v)));
    put("stopSequences", (!s.stop.is_empty()).then(|| json!(s.stop)));
    put("candidateCount", s.n.map(|v| json!(v)));
    put("seed", s.seed.map(|v| json!(v)));
    put("presencePenalty", s.presence_penalty.map(|v| json!(v)));
    put("frequencyPenalty", s.frequency_penalty.map(|v| json!(v)));
    put("responseLogprobs", s.logprobs.map(|v| json!(v)));
    put("logprobs", s.top_logprobs.map(|v| json!(v)));
    match &req.output_format {
        Some(OutputFormat::JsonObject) => put("responseMimeType", Some(json!("application/json"))),
        Some(OutputFormat::JsonSchema { schema, .. }) => {
            put("responseMimeType", Some(json!("application/json")));
            if legacy {
                put("responseSchema", Some(sanitize_schema(schema)));
            } else {
                put("responseJsonSchema", Some(schema.clone()));
            }
        }
        None => {}
    }
    put("thinkingConfig", thinking_config(req, t.model));
    if !gc.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gc));
    }

    if same {
        for (k, v) in &req.extras {
            if k != "generationConfig" && k != "model" && !body.contains_key(k) {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(body)
}

fn thinking_config(req: &Request, model: &str) -> Option<Value> {
    let r = &req.reasoning;
    let m = model.to_ascii_lowercase();
    let gemini3 = !pre_gemini3(&m) && m.contains("gemini");
    let mut tc = Map::new();
    match req.reasoning_on() {
        Some(true) => {
            if let (true, Some(e), None) = (gemini3, r.effort.as_deref(), r.budget) {
                let level = match e {
                    "none" | "minimal" => "minimal",
                    "low" => "low",
                    "medium" => "medium",
                    _ => "high",
                };
                tc.insert("thinkingLevel".into(), json!(level));
            } else {
                let budget = r
                    .budget
                    .or_else(|| r.effort.as_deref().and_then(effort_budget))
                    .map_or(-1, |b| b as i64);
                tc.insert("thinkingBudget".into(), json!(budget));
            }
            tc.insert(
                "includeThoughts".into(),
                json!(r.include_thoughts.unwrap_or(true)),
            );
        }
        Some(false) => {
            // Pro models and Gemini 3 cannot switch thinking off: leave their default.
            if !gemini3 && !m.contains("pro") {
                tc.insert("thinkingBudget".into(), json!(0));
            }
        }
        None => {
            if let Some(i) = r.include_thoughts {
                tc.insert("includeThoughts".into(), json!(i));
            }
        }
    }
    (!tc.is_empty()).then_some(Value::Object(tc))
}

/// JSON Schema → Gemini's OpenAPI subset for `parameters`/`responseSchema` (pitfall 18): drops
/// `$schema`, `$id`, `$ref`, `$defs`, `definitions`, `additionalProperties`, `propertyNames`,
/// `patternProperties`, `title`, `examples`, `default`…; `const` → `enum:[v]`; type arrays → one
/// type + `nullable`.
pub fn sanitize_schema(v: &Value) -> Value {
    const DROP: &[&str] = &[
        "$schema",
        "$id",
        "$ref",
        "$defs",
        "$comment",
        "definitions",
        "additionalProperties",
        "propertyNames",
        "patternProperties",
        "unevaluatedProperties",
        "dependentRequired",
        "dependentSchemas",
        "title",
        "examples",
        "default",
        "const",
        "strict",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "contentEncoding",
        "contentMediaType",
        "if",
        "then",
        "else",
        "not",
    ];
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, val) in o {
                if DROP.contains(&k.as_str()) {
                    continue;
                }
                match k.as_str() {
                    "type" => match val {
                        Value::Array(ts) => {
                            let non_null: Vec<&Value> =
                                ts.iter().filter(|t| t.as_str() != Some("null")).collect();
                            if let Some(t) = non_null.first() {
                                out.insert("type".into(), (*t).clone());
                            }
                            if non_null.len() < ts.len() {
                                out.insert("nullable".into(), json!(true));
                            }
                        }
                        other => {
                            out.insert("type".into(), other.clone());
                        }
                    },
                    "properties" => {
                        if let Value::Object(ps) = val {
                            out.insert(
                                k.clone(),
                                Value::Object(
                                    ps.iter()
                                        .map(|(n, s)| (n.clone(), sanitize_schema(s)))
                                        .collect(),
                                ),
                            );
                        }
                    }
                    _ => {
                        out.insert(k.clone(), sanitize_schema(val));
                    }
                }
            }
            if let Some(c) = o.get("const") {
                out.entry("enum").or_insert_with(|| json!([c]));
                if !out.contains_key("type") {
                    let t = match c {
                        Value::String(_) => "string",
                        Value::Bool(_) => "boolean",
                        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                        Value::Number(_) => "number",
                        _ => "string",
                    };
                    out.insert("type".into(), json!(t));
                }
            }
            // Gemini enums are string-only.
            if let Some(Value::Array(e)) = out.get("enum") {
                if e.iter().any(|x| !x.is_string()) {
                    let strs: Vec<Value> = e
                        .iter()
                        .map(|x| match x {
                            Value::String(_) => x.clone(),
                            other => json!(other.to_string()),
                        })
                        .collect();
                    out.insert("enum".into(), Value::Array(strs));
                    out.insert("type".into(), json!("string"));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sanitize_schema).collect()),
        other => other.clone(),
    }
}

/// A function result as the object Gemini wants (strings wrapped as `{"output": …}`, errors as
/// `{"error": …}`; a result that is itself a JSON object is sent as is).
fn response_object(content: &[Block], is_error: bool) -> Value {
    let text = crate::ir::join_text(content, "\n");
    if !is_error {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
            return v;
        }
    }
    if is_error {
        json!({ "error": text })
    } else {
        json!({ "output": text })
    }
}

fn write_parts(
    req: &Request,
    blocks: &[Block],
    i: usize,
    t: &Target,
) -> Result<Vec<Value>, ApiError> {
    let mut parts: Vec<Value> = Vec::new();
    let mut trailing: Vec<Value> = Vec::new(); // images of tool results, after the responses
                                               // A signature waiting for the next part (signature-only thinking, minted signatures).
    let mut carry: Option<(String, bool)> = None; // (signature, meant for a function call)
    for (j, b) in blocks.iter().enumerate() {
        match b {
            Block::Thinking { text, signature } => {
                let sig = signature.as_ref().and_then(|s| {
                    s.valid_for(ORIGIN_GEMINI, t.origin)
                        .map(|v| (v, s.origin == ORIGIN_GEMINI))
                });
                let next_call_unsigned = blocks[j + 1..]
                    .iter()
                    .take_while(|b| !matches!(b, Block::Thinking { .. }))
                    .find_map(|b| match b {
                        Block::ToolCall { signature, .. } => Some(
                            signature
                                .as_ref()
                                .and_then(|s| s.valid_for(ORIGIN_GEMINI, t.origin))
                                .is_none(),
                        ),
                        _ => None,
                    })
                    .unwrap_or(false);
                let next_text =
                    matches!(blocks.get(j + 1), Some(Block::Text { text, .. }) if !text.is_empty());
                match sig {
                    Some((sig, native)) if !native && next_call_unsigned => {
                        // A minted signature: Gemini wants it on the function call.
                        if !text.is_empty() {
                            parts.push(json!({"text": text, "thought": true}));
                        }
                        carry = Some((sig.to_string(), true));
                    }
                    Some((sig, _)) if text.is_empty() && next_text => {
                        carry = Some((sig.to_string(), false));
                    }
                    Some((sig, _)) if text.is_empty() => {
                        parts.push(json!({"text": "", "thoughtSignature": sig}))
                    }
                    Some((sig, _)) => {
                        parts.push(json!({"text": text, "thought": true, "thoughtSignature": sig}))
                    }
                    // Unsigned thought summaries only round-trip Gemini → Gemini; other vendors'
                    // reasoning is of no use to Gemini.
                    None if req.source == Some(Dialect::Gemini) && !text.is_empty() => {
                        parts.push(json!({"text": text, "thought": true}))
                    }
                    None => {}
                }
            }
            Block::Text { text, .. } => {
                if text.is_empty() {
                    continue;
                }
                let mut p = json!({ "text": text });
                if let Some((s, false)) = &carry {
                    p["thoughtSignature"] = json!(s);
                    carry = None;
                }
                parts.push(p);
            }
            Block::ToolCall {
                id,
                name,
                args_json,
                signature,
                ..
            } => {
                let mut fc = json!({"name": name, "args": args_object(args_json)});
                if !id.starts_with(SYNTH_ID) {
                    fc["id"] = json!(id);
                }
                let mut p = json!({ "functionCall": fc });
                let own = signature
                    .as_ref()
                    .and_then(|s| s.valid_for(ORIGIN_GEMINI, t.origin));
                if let Some(s) = own
                    .map(str::to_string)
                    .or_else(|| carry.take().map(|(s, _)| s))
                {
                    p["thoughtSignature"] = json!(s);
                }
                parts.push(p);
            }
            Block::ToolResult {
                call_id,
                name,
                content,
                is_error,
                ..
            } => {
                let name = name
                    .clone()
                    .or_else(|| req.call_name(call_id).map(str::to_string))
                    .unwrap_or_else(|| "unknown_function".to_string());
                let mut fr = json!({"name": name, "response": response_object(content, *is_error)});
                if !call_id.starts_with(SYNTH_ID) {
                    fr["id"] = json!(call_id);
                }
                parts.push(json!({ "functionResponse": fr }));
                for (k, c) in content.iter().enumerate() {
                    if !matches!(c, Block::Text { .. }) {
                        trailing.extend(media_part(c, i, k, t)?);
                    }
                }
            }
            Block::RedactedThinking { .. } => {}
            Block::Opaque {
                dialect: Dialect::Gemini,
                value,
            } => parts.push(value.clone()),
            Block::Opaque { .. } => {}
            _ => parts.extend(media_part(b, i, j, t)?),
        }
    }
    if let Some((s, _)) = carry {
        parts.push(json!({"text": "", "thoughtSignature": s}));
    }
    parts.extend(trailing);
    Ok(parts)
}

fn media_part(b: &Block, i: usize, j: usize, t: &Target) -> Result<Vec<Value>, ApiError> {
    let src_part = |source: &MediaSource, default_mime: &str| -> Result<Vec<Value>, ApiError> {
        Ok(match source {
            MediaSource::Base64 { mime, data } => {
                vec![json!({"inlineData": {"mimeType": mime, "data": data}})]
            }
            MediaSource::Url(u) => {
                vec![json!({"fileData": {"mimeType": guess_mime(u, default_mime), "fileUri": u}})]
            }
            MediaSource::Text(text) => vec![json!({ "text": text })],
            MediaSource::Content(blocks) => {
                vec![json!({ "text": crate::ir::join_text(blocks, "\n") })]
            }
            MediaSource::FileId { .. } => {
                return Err(unsupported_block(
                    b,
                    i,
                    j,
                    "a file id of another provider",
                    t.dialect,
                ))
            }
        })
    };
    match b {
        Block::Text { text, .. } if !text.is_empty() => Ok(vec![json!({ "text": text })]),
        Block::Image { source, .. } => src_part(source, "image/jpeg"),
        Block::Document { source, title, .. } => {
            let mut v = Vec::new();
            if let (Some(t), MediaSource::Text(_) | MediaSource::Content(_)) = (title, source) {
                v.push(json!({ "text": t }));
            }
            v.extend(src_part(source, "application/pdf")?);
            Ok(v)
        }
        Block::Audio { mime, data, .. } => Ok(vec![
            json!({"inlineData": {"mimeType": mime, "data": data}}),
        ]),
        _ => Ok(vec![]),
    }
}

fn guess_mime(url: &str, default: &str) -> String {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        _ => default,
    }
    .to_string()
}

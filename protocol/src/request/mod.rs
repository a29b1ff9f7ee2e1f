//! Request translation: a client body in one dialect → [`crate::ir::Request`] → an upstream body in
//! another dialect, plus the [`ResponseContext`] the response side needs.
//!
//! Pipeline ([`translate_request`]): parse (per-dialect parser, 400s name the field) → repair the
//! conversation (tool-call/result pairing, ids) → fit it to the target (tool names, tool ids,
//! unmappable features) → write (per-dialect writer).
//!
//! # What is dropped, and what is refused
//!
//! Features with no equivalent on the target are dropped only where that is harmless (an
//! optimisation, a hint, or bookkeeping the upstream does not need); anything that would change
//! the answer the client asked for is refused with a 400 naming the client's field
//! ([`ApiError::invalid_param`]).
//!
//! | source feature | target | outcome |
//! |---|---|---|
//! | OpenAI `n` > 1 / Gemini `candidateCount` > 1 | other dialect | **400** `n` / `generationConfig.candidateCount` |
//! | OpenAI `logprobs:true`, `top_logprobs` | Anthropic | **400** `logprobs` / `top_logprobs` |
//! | OpenAI `input_audio` parts | Anthropic | **400** `messages[i].content[j]` |
//! | OpenAI `audio`, `modalities` ≠ text, `web_search_options` | other dialect | **400** naming the field |
//! | OpenAI `type:"custom"` tools, Anthropic server tools (`web_search_*`, `bash_*`…), Gemini `googleSearch`/`codeExecution` tools | other dialect | **400** `tools[i]` |
//! | Anthropic `mcp_servers` | other dialect | **400** `mcp_servers` |
//! | Gemini `cachedContent`, `responseModalities` ≠ TEXT, `speechConfig` | other dialect | **400** naming the field |
//! | provider file ids (OpenAI `file_id`, Anthropic `file` source) | other dialect | **400** `messages[i].content[j]` |
//! | document URL | OpenAI | **400** `messages[i].content[j]` (Chat Completions file parts take only inline data or file ids) |
//! | images other than jpeg/png/gif/webp, documents other than PDF/plain text | Anthropic | **400** `messages[i].content[j]` |
//! | `seed`, `presence_penalty`, `frequency_penalty`, `logit_bias` | Anthropic | dropped (sampling hints) |
//! | `top_k` | OpenAI without the `top_k` capability | dropped |
//! | `logit_bias`, `store`, `metadata` (other than user id), `service_tier`, `prediction`, `verbosity`, `prompt_cache_key`, `safety_identifier` | non-OpenAI | dropped (bookkeeping/optimisation) |
//! | `user` / `metadata.user_id` | Gemini | dropped (no equivalent) |
//! | `parallel_tool_calls` / `disable_parallel_tool_use` | Gemini | dropped (no switch) |
//! | image `detail` | Anthropic, Gemini | dropped |
//! | message `name` (OpenAI) | any | dropped |
//! | `cache_control` markers | OpenAI without the `cache_control` capability, Gemini | dropped (caching is automatic / resource-based there) |
//! | Anthropic top-level `cache_control`, `service_tier`, `container`, `context_management`, `inference_geo` | other dialect | dropped |
//! | Anthropic tool fields `input_examples`, `defer_loading`, `eager_input_streaming`, `allowed_callers` | any | dropped (pitfall 21: lagging backends reject them) |
//! | Anthropic `citations` on text blocks of earlier turns | any | dropped |
//! | Anthropic server-tool history blocks (`server_tool_use`, `web_search_tool_result`, …), Gemini `executableCode`/`codeExecutionResult` parts | other dialect | dropped (the assistant's text answer stays) |
//! | thinking/redacted thinking whose signature origin is not the target | Anthropic, Gemini | dropped (pitfall 23); Gemini calls get the `skip_thought_signature_validator` sentinel |
//! | thinking text | OpenAI without `reasoning_echo` | dropped (Chat Completions has no reasoning input) |
//! | `temperature` > 1 | Anthropic | clamped to 1 |
//! | `top_p` together with `temperature`; `temperature`≠1, `top_k`, `top_p` < 0.95 with thinking | Anthropic | dropped (pitfall 27; API constraints) |
//! | thinking with a forced `tool_choice` (or the JSON tool trick) | Anthropic | thinking dropped (pitfall 20) |
//! | thinking when the last assistant turn of the running tool loop has no replayable thinking block | Anthropic | thinking dropped (pitfall 24) |
//! | `tool_choice` other than `auto` | OpenAI with `tool_choice_auto_only` | downgraded (`none` removes the tools, a named tool filters the list) |
//! | Gemini `toolConfig` mode `VALIDATED` | other dialect | treated as `AUTO` |
//! | orphan tool results (no matching call in the previous assistant turn) | any | turned into user text (pitfall 14) |
//! | tool calls without a result | any | answered with a synthetic error result "Tool call was interrupted" (pitfall 14) |
//! | unknown top-level fields | other dialect | dropped (kept for the same dialect) |

mod anthropic;
mod gemini;
mod openai;

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::caps::Capabilities;
use crate::ir::{Block, Msg, Request, Role, ToolChoice};
use crate::{ApiError, Dialect, ResponseContext};

/// The upstream a request is translated for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub dialect: Dialect,
    /// The upstream's model name.
    pub model: &'a str,
    pub caps: &'a Capabilities,
    /// `provider/model`: reasoning signatures minted for this origin are replayed to it.
    pub origin: &'a str,
}

/// An upstream request body and the context for translating its answer.
#[derive(Debug, Clone)]
pub struct Translated {
    pub body: Vec<u8>,
    /// Whether the body asks for a stream (Gemini: whether to call `streamGenerateContent`).
    pub upstream_stream: bool,
    pub ctx: ResponseContext,
}

/// Parse a client body in `client` dialect, translate for `target`. `public_model` is the model id
/// the client used.
pub fn translate_request(
    client: Dialect,
    body: &[u8],
    public_model: &str,
    target: &Target,
) -> Result<Translated, ApiError> {
    let req = parse_request(client, body)?;
    let stream = req.stream;
    let include_usage = client == Dialect::OpenAi && stream && req.stream_usage;
    let (value, out) = write_request(req, target)?;
    let ctx = ResponseContext {
        client,
        upstream: target.dialect,
        model: public_model.to_string(),
        client_stream: stream,
        upstream_stream: stream,
        include_usage,
        tool_names: out.tool_names,
        json_tool: out.json_tool,
        origin: target.origin.to_string(),
    };
    // The upstream body is about as long as the client's: reserve that much up front.
    let mut upstream_body = Vec::with_capacity(body.len() + body.len() / 4);
    serde_json::to_writer(&mut upstream_body, &value).expect("serializing a Value cannot fail");
    Ok(Translated {
        body: upstream_body,
        upstream_stream: stream,
        ctx,
    })
}

/// Parse a request body of `dialect` into the IR. Malformed bodies give a 400 naming the field.
pub fn parse_request(dialect: Dialect, body: &[u8]) -> Result<Request, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(root) = value else {
        return Err(ApiError::invalid("request body must be a JSON object"));
    };
    let mut req = match dialect {
        Dialect::OpenAi => openai::parse(root)?,
        Dialect::Anthropic => anthropic::parse(root)?,
        Dialect::Gemini => gemini::parse(root)?,
    };
    req.source = Some(dialect);
    repair(&mut req);
    Ok(req)
}

/// What writing a request learnt that the response side needs.
#[derive(Debug, Default)]
pub struct WriteOut {
    /// Upstream tool name → client tool name, for renamed tools.
    pub tool_names: HashMap<String, String>,
    /// The forced tool emulating JSON-schema output, if any.
    pub json_tool: Option<String>,
}

/// Write an IR request as a body for `target` (a JSON value; Gemini bodies carry no model).
/// Takes the request because fitting it to the target (tool renames, tool ids) edits it.
pub fn write_request(mut req: Request, target: &Target) -> Result<(Value, WriteOut), ApiError> {
    check_unmappable(&req, target.dialect)?;
    let mut out = WriteOut::default();
    let names = NameRules::for_dialect(target.dialect);
    out.tool_names = rename_tools(&mut req, &names);
    if target.dialect == Dialect::Anthropic || target.caps.tool_id_pattern_strict {
        sanitize_tool_ids(&mut req);
    }
    let value = match target.dialect {
        Dialect::OpenAi => openai::write(&req, target, &mut out)?,
        Dialect::Anthropic => anthropic::write(&req, target, &mut out)?,
        Dialect::Gemini => gemini::write(&req, target, &mut out)?,
    };
    Ok((Value::Object(value), out))
}

// ---------------------------------------------------------------------------------------------
// Cross-dialect refusals

/// Top-level fields of each source dialect that change the answer and cannot be honoured by
/// another dialect: `(source, field, rejects)`.
fn check_unmappable(req: &Request, target: Dialect) -> Result<(), ApiError> {
    let Some(source) = req.source else {
        return Ok(());
    };
    if source == target {
        return Ok(());
    }
    if req.sampling.n.is_some_and(|n| n > 1) {
        let field = match source {
            Dialect::Gemini => "generationConfig.candidateCount",
            _ => "n",
        };
        return Err(ApiError::invalid_param(
            field,
            format!(
                "more than one choice is not supported by this model's {} upstream",
                target.as_str()
            ),
        ));
    }
    let e = &req.extras;
    let present = |k: &str| e.get(k).is_some_and(|v| !v.is_null());
    match source {
        Dialect::OpenAi => {
            for k in ["audio", "web_search_options"] {
                if present(k) {
                    return Err(unsupported(k, target));
                }
            }
            if let Some(Value::Array(m)) = e.get("modalities") {
                if m.iter().any(|x| x.as_str() != Some("text")) {
                    return Err(unsupported("modalities", target));
                }
            }
        }
        Dialect::Anthropic => {
            if let Some(Value::Array(m)) = e.get("mcp_servers") {
                if !m.is_empty() {
                    return Err(unsupported("mcp_servers", target));
                }
            }
        }
        Dialect::Gemini => {
            if present("cachedContent") {
                return Err(unsupported("cachedContent", target));
            }
            if let Some(Value::Object(g)) = e.get("generationConfig") {
                if let Some(Value::Array(m)) = g.get("responseModalities") {
                    if m.iter()
                        .any(|x| !x.as_str().is_some_and(|s| s.eq_ignore_ascii_case("text")))
                    {
                        return Err(unsupported("generationConfig.responseModalities", target));
                    }
                }
                if g.get("speechConfig").is_some_and(|v| !v.is_null()) {
                    return Err(unsupported("generationConfig.speechConfig", target));
                }
            }
        }
    }
    if target == Dialect::Anthropic {
        if req.sampling.logprobs == Some(true) {
            return Err(unsupported("logprobs", target));
        }
        if req.sampling.top_logprobs.is_some_and(|n| n > 0) {
            return Err(unsupported("top_logprobs", target));
        }
    }
    Ok(())
}

pub(crate) fn unsupported(field: &str, target: Dialect) -> ApiError {
    ApiError::invalid_param(
        field,
        format!(
            "`{field}` is not supported by this model's upstream ({} API)",
            target.as_str()
        ),
    )
}

/// A 400 for a content block the target cannot take, naming the block's place in the client
/// request (or its IR position when unknown).
pub(crate) fn unsupported_block(
    b: &Block,
    msg: usize,
    block: usize,
    what: &str,
    target: Dialect,
) -> ApiError {
    ApiError::invalid_param(
        b.path()
            .map(str::to_string)
            .unwrap_or_else(|| format!("messages[{msg}].content[{block}]")),
        format!(
            "{what} is not supported by this model's upstream ({} API)",
            target.as_str()
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Conversation repair (target-independent)

/// Text of the synthetic result answering a tool call that has none.
pub const INTERRUPTED: &str = "Tool call was interrupted (no result was recorded).";

/// Make tool calls and results pair up (pitfalls 14, 15, 19): every call gets a non-empty id;
/// results without an id take the next unanswered call of the preceding assistant turn; every call
/// is answered in the next user turn (missing answers become synthetic error results); results
/// that answer nothing become plain text; duplicate results for one call are merged; results come
/// first in their user turn.
pub fn repair(req: &mut Request) {
    let msgs = std::mem::take(&mut req.messages);
    let mut out: Vec<Msg> = Vec::with_capacity(msgs.len() + 1);
    let mut turn = Turn::default();
    for (i, mut m) in msgs.into_iter().enumerate() {
        match m.role {
            Role::System => out.push(m),
            Role::Assistant => {
                turn.finish(&mut out);
                let mut k = 0;
                for b in &mut m.blocks {
                    if let Block::ToolCall { id, name, .. } = b {
                        // Empty or repeated ids (pitfall 15) get a fresh, deterministic one.
                        if id.is_empty() || turn.calls.iter().any(|(c, _)| c == id) {
                            *id = format!("call_{i}_{k}");
                        }
                        k += 1;
                        turn.calls.push((id.clone(), name.clone()));
                    }
                }
                turn.assistant = out.len();
                out.push(m);
            }
            Role::User => {
                let mut results: Vec<Block> = Vec::new();
                let mut rest: Vec<Block> = Vec::new();
                for b in m.blocks.drain(..) {
                    let Block::ToolResult {
                        mut call_id,
                        name: _,
                        content,
                        is_error,
                        cache_control,
                    } = b
                    else {
                        rest.push(b);
                        continue;
                    };
                    if call_id.is_empty() {
                        if let Some((id, _)) = turn
                            .calls
                            .iter()
                            .find(|(id, _)| !turn.answered.contains(id))
                        {
                            call_id = id.clone();
                        }
                    }
                    let Some((_, call_name)) = turn.calls.iter().find(|(id, _)| *id == call_id)
                    else {
                        rest.extend(orphan_to_text(&call_id, content));
                        continue;
                    };
                    if turn.answered.contains(&call_id) {
                        // A second result for the same call: merge it into the first.
                        let first = results.iter_mut().chain(
                            turn.first_user
                                .and_then(|u| out.get_mut(u))
                                .map(|u| u.blocks.iter_mut())
                                .into_iter()
                                .flatten(),
                        );
                        for r in first {
                            if let Block::ToolResult {
                                call_id: c,
                                content: first,
                                is_error: first_err,
                                ..
                            } = r
                            {
                                if *c == call_id {
                                    first.extend(content);
                                    *first_err |= is_error;
                                    break;
                                }
                            }
                        }
                        continue;
                    }
                    turn.answered.push(call_id.clone());
                    results.push(Block::ToolResult {
                        call_id,
                        name: Some(call_name.clone()),
                        content,
                        is_error,
                        cache_control,
                    });
                }
                match turn.first_user {
                    Some(u) => {
                        // Late answers join the first user turn after the calls, so the
                        // results sit right after the calls (OpenAI tool messages).
                        let blocks = &mut out[u].blocks;
                        let at = blocks.iter().take_while(|b| b.is_tool_result()).count();
                        blocks.splice(at..at, results);
                        if !rest.is_empty() {
                            m.blocks = rest;
                            out.push(m);
                        }
                    }
                    None => {
                        results.extend(rest);
                        m.blocks = results;
                        if turn.calls.is_empty() {
                            turn.first_user = Some(out.len());
                            out.push(m);
                        } else {
                            // Ahead of any system message that slipped in after the calls.
                            let at = turn.assistant + 1;
                            turn.first_user = Some(at);
                            out.insert(at, m);
                        }
                    }
                }
            }
        }
    }
    turn.finish(&mut out);
    req.messages = out;
}

/// The tool calls of the latest assistant turn and what answered them so far.
#[derive(Default)]
struct Turn {
    calls: Vec<(String, String)>,
    answered: Vec<String>,
    /// Index in the output of the assistant message and of the first user message after it.
    assistant: usize,
    first_user: Option<usize>,
}

impl Turn {
    /// Answer the unanswered calls with synthetic error results, in the first user turn after
    /// the calls (or a new one right after them), then reset.
    fn finish(&mut self, out: &mut Vec<Msg>) {
        let missing: Vec<Block> = self
            .calls
            .iter()
            .filter(|(id, _)| !self.answered.contains(id))
            .map(|(id, n)| interrupted(id, n))
            .collect();
        if !missing.is_empty() {
            match self.first_user {
                Some(u) => {
                    let blocks = &mut out[u].blocks;
                    let at = blocks.iter().take_while(|b| b.is_tool_result()).count();
                    blocks.splice(at..at, missing);
                }
                None => out.insert(
                    self.assistant + 1,
                    Msg {
                        role: Role::User,
                        blocks: missing,
                    },
                ),
            }
        }
        *self = Turn::default();
    }
}

fn interrupted(id: &str, name: &str) -> Block {
    Block::ToolResult {
        call_id: id.to_string(),
        name: Some(name.to_string()),
        content: vec![Block::text(INTERRUPTED)],
        is_error: true,
        cache_control: None,
    }
}

fn orphan_to_text(call_id: &str, content: Vec<Block>) -> Vec<Block> {
    let text = crate::ir::join_text(&content, "\n");
    let mut v = vec![Block::text(format!(
        "[Result of tool call {call_id}]\n{text}"
    ))];
    v.extend(
        content
            .into_iter()
            .filter(|b| !matches!(b, Block::Text { .. })),
    );
    v
}

// ---------------------------------------------------------------------------------------------
// Tool ids and names

/// An id matching `^[a-zA-Z0-9_-]+$`: every other character becomes `_` (Kimi `functions.Bash:0`
/// → `functions_Bash_0`, pitfall 16). Applied to calls and results alike, so pairs still match.
pub fn sanitize_tool_id(id: &str) -> String {
    if id.is_empty() {
        return "call".to_string();
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn sanitize_tool_ids(req: &mut Request) {
    for m in &mut req.messages {
        for b in &mut m.blocks {
            match b {
                Block::ToolCall { id, .. } => *id = sanitize_tool_id(id),
                Block::ToolResult { call_id, .. } => *call_id = sanitize_tool_id(call_id),
                _ => {}
            }
        }
    }
}

/// A dialect's tool-name rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameRules {
    max: usize,
    extra: &'static str,
    /// The first character must be a letter or `_`.
    letter_first: bool,
}

impl NameRules {
    pub(crate) fn for_dialect(d: Dialect) -> NameRules {
        match d {
            Dialect::OpenAi => NameRules {
                max: 64,
                extra: "_-",
                letter_first: false,
            },
            Dialect::Anthropic => NameRules {
                max: 128,
                extra: "_-",
                letter_first: false,
            },
            Dialect::Gemini => NameRules {
                max: 128,
                extra: "_.:-",
                letter_first: true,
            },
        }
    }

    fn ok_char(&self, c: char) -> bool {
        c.is_ascii_alphanumeric() || self.extra.contains(c)
    }

    fn valid(&self, name: &str) -> bool {
        !name.is_empty()
            && name.len() <= self.max
            && name.chars().all(|c| self.ok_char(c))
            && (!self.letter_first
                || name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
    }

    /// A valid name for `name`: invalid characters become `_`; too long names are cut to
    /// `prefix + "_" + 8 hex digits of sha256(name)` (OpenAI: 55 + 1 + 8 = 64, pitfall 17).
    fn fit(&self, name: &str, hashed: bool) -> String {
        if !hashed && self.valid(name) {
            return name.to_string();
        }
        let mut s: String = name
            .chars()
            .map(|c| if self.ok_char(c) { c } else { '_' })
            .collect();
        if self.letter_first && !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            s.insert(0, '_');
        }
        if hashed || s.len() > self.max {
            let hash = Sha256::digest(name.as_bytes());
            let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
            s.truncate(self.max - 9);
            s = format!("{s}_{hex}");
        }
        s
    }
}

/// Rename every tool name the target would reject; returns upstream name → client name.
fn rename_tools(req: &mut Request, rules: &NameRules) -> HashMap<String, String> {
    let mut names: Vec<String> = req.tools.iter().map(|t| t.name.clone()).collect();
    for m in &req.messages {
        for b in &m.blocks {
            match b {
                Block::ToolCall { name, .. } => names.push(name.clone()),
                Block::ToolResult { name: Some(n), .. } => names.push(n.clone()),
                _ => {}
            }
        }
    }
    let mut forward: HashMap<String, String> = HashMap::new();
    let mut taken: HashSet<String> = names.iter().filter(|n| rules.valid(n)).cloned().collect();
    for n in names {
        if rules.valid(&n) || forward.contains_key(&n) {
            continue;
        }
        let mut up = rules.fit(&n, false);
        if taken.contains(&up) {
            up = rules.fit(&n, true);
        }
        taken.insert(up.clone());
        forward.insert(n, up);
    }
    if forward.is_empty() {
        return HashMap::new();
    }
    let map = |n: &mut String| {
        if let Some(up) = forward.get(n.as_str()) {
            *n = up.clone();
        }
    };
    for t in &mut req.tools {
        if t.native.is_none() {
            map(&mut t.name);
        }
    }
    match &mut req.tool_choice {
        Some(ToolChoice::Tool(n)) => map(n),
        Some(ToolChoice::Allowed { names, .. }) => names.iter_mut().for_each(map),
        _ => {}
    }
    for m in &mut req.messages {
        for b in &mut m.blocks {
            match b {
                Block::ToolCall { name, .. } => map(name),
                Block::ToolResult { name: Some(n), .. } => map(n),
                _ => {}
            }
        }
    }
    forward.into_iter().map(|(c, u)| (u, c)).collect()
}

// ---------------------------------------------------------------------------------------------
// Shared helpers for the dialect modules

pub(crate) type Obj = Map<String, Value>;

pub(crate) fn sub(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub(crate) fn wrong_type(path: &str, expected: &str) -> ApiError {
    ApiError::invalid_param(path, format!("`{path}` must be {expected}"))
}

/// A present, non-null field.
pub(crate) fn get<'a>(m: &'a Obj, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

pub(crate) fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, ApiError> {
    v.as_object().ok_or_else(|| wrong_type(path, "an object"))
}

pub(crate) fn opt_obj<'a>(m: &'a Obj, k: &str, path: &str) -> Result<Option<&'a Obj>, ApiError> {
    get(m, k).map(|v| as_obj(v, &sub(path, k))).transpose()
}

pub(crate) fn opt_str<'a>(m: &'a Obj, k: &str, path: &str) -> Result<Option<&'a str>, ApiError> {
    get(m, k)
        .map(|v| {
            v.as_str()
                .ok_or_else(|| wrong_type(&sub(path, k), "a string"))
        })
        .transpose()
}

pub(crate) fn req_str<'a>(m: &'a Obj, k: &str, path: &str) -> Result<&'a str, ApiError> {
    opt_str(m, k, path)?.ok_or_else(|| {
        let p = sub(path, k);
        ApiError::invalid_param(&p, format!("`{p}` is required"))
    })
}

pub(crate) fn opt_f64(m: &Obj, k: &str, path: &str) -> Result<Option<f64>, ApiError> {
    get(m, k)
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| wrong_type(&sub(path, k), "a number"))
        })
        .transpose()
}

pub(crate) fn opt_u64(m: &Obj, k: &str, path: &str) -> Result<Option<u64>, ApiError> {
    get(m, k)
        .map(|v| {
            v.as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| wrong_type(&sub(path, k), "a non-negative integer"))
        })
        .transpose()
}

pub(crate) fn opt_i64(m: &Obj, k: &str, path: &str) -> Result<Option<i64>, ApiError> {
    get(m, k)
        .map(|v| {
            v.as_i64()
                .ok_or_else(|| wrong_type(&sub(path, k), "an integer"))
        })
        .transpose()
}

pub(crate) fn opt_bool(m: &Obj, k: &str, path: &str) -> Result<Option<bool>, ApiError> {
    get(m, k)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| wrong_type(&sub(path, k), "a boolean"))
        })
        .transpose()
}

pub(crate) fn opt_arr<'a>(
    m: &'a Obj,
    k: &str,
    path: &str,
) -> Result<Option<&'a Vec<Value>>, ApiError> {
    get(m, k)
        .map(|v| {
            v.as_array()
                .ok_or_else(|| wrong_type(&sub(path, k), "an array"))
        })
        .transpose()
}

/// A string or an array of strings, as a list.
pub(crate) fn str_list(m: &Obj, k: &str, path: &str) -> Result<Vec<String>, ApiError> {
    match get(m, k) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong_type(&idx(&sub(path, k), i), "a string"))
            })
            .collect(),
        Some(_) => Err(wrong_type(&sub(path, k), "a string or an array of strings")),
    }
}

/// `data:<mime>;base64,<payload>` → `(mime, payload)`.
pub(crate) fn parse_data_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let meta = meta.strip_suffix(";base64")?;
    // Parameters (`;charset=…`, `;name=…`) are ignored.
    let mime = meta.split(';').next().unwrap_or_default().trim();
    if mime.is_empty() || !mime.contains('/') {
        return None;
    }
    Some((normalize_mime(mime), data.to_string()))
}

/// Lower-case, with the common `image/jpg` alias fixed.
pub(crate) fn normalize_mime(mime: &str) -> String {
    match mime.to_ascii_lowercase().as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn data_url(mime: &str, data: &str) -> String {
    format!("data:{mime};base64,{data}")
}

/// The arguments object of a tool call given as a raw JSON string (pitfall: never send a string
/// as Anthropic `input`): empty → `{}`, invalid or non-object JSON → `{"_raw": <string>}`.
pub(crate) fn args_object(args_json: &str) -> Value {
    let t = args_json.trim();
    if t.is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(t) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({ "_raw": args_json }),
    }
}

/// An object of values already built, moved in: `json!` would serialize each value into a fresh
/// copy, which for message contents means copying the conversation once more.
pub(crate) fn obj<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A JSON value as the raw JSON string of tool arguments.
pub(crate) fn args_string(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Effort level → thinking budget (protocols.md §2.8).
pub(crate) fn effort_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        "xhigh" | "max" => Some(32000),
        _ => None,
    }
}

/// Thinking budget → effort bucket (≤1024 low, ≤8192 medium, else high).
pub(crate) fn budget_effort(budget: u64) -> &'static str {
    if budget <= 1024 {
        "low"
    } else if budget <= 8192 {
        "medium"
    } else {
        "high"
    }
}

/// Concatenate consecutive messages of the same role (Anthropic and Gemini need alternation);
/// in merged user turns tool results stay first.
pub(crate) fn merge_same_role<T>(
    msgs: Vec<(T, Vec<Value>)>,
    is_result: impl Fn(&Value) -> bool,
) -> Vec<(T, Vec<Value>)>
where
    T: PartialEq,
{
    let mut out: Vec<(T, Vec<Value>)> = Vec::new();
    for (role, blocks) in msgs {
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((r, b)) if *r == role => {
                b.extend(blocks);
                let (mut first, rest): (Vec<Value>, Vec<Value>) =
                    std::mem::take(b).into_iter().partition(&is_result);
                first.extend(rest);
                *b = first;
            }
            _ => out.push((role, blocks)),
        }
    }
    out
}

/// The instruction appended to the system prompt when JSON output must be asked for in words.
pub(crate) fn json_instruction(schema: Option<&Value>) -> String {
    match schema {
        Some(s) => format!(
            "Respond only with a single JSON value (no prose, no code fences) that conforms to this JSON schema:\n{s}"
        ),
        None => "Respond only with a single JSON object (no prose, no code fences).".to_string(),
    }
}

#[cfg(test)]
mod tests;

//! Request bodies shared by the root package's benches: the same conversation in each dialect,
//! small (one question) and agent-sized (system prompt, four tools, a tool call and its result).

use ezrouter_protocol::Dialect;
use serde_json::{json, Value};

pub const SIZES: [&str; 2] = ["small", "agent"];

fn system_prompt() -> String {
    "You are a careful coding assistant. Answer concisely, cite files with paths, and prefer small diffs. ".repeat(20)
}

fn file_text() -> String {
    "fn main() {\n    println!(\"hello, proxy\");\n}\n// padding line to look like a real file\n"
        .repeat(24)
}

fn tools() -> Vec<(&'static str, &'static str, Value)> {
    let path = json!({"type":"object","properties":{"path":{"type":"string","description":"File path"}},"required":["path"]});
    vec![
        ("read_file", "Read a file from the workspace.", path.clone()),
        (
            "write_file",
            "Write a file.",
            json!({"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}),
        ),
        ("list_dir", "List a directory.", path),
        (
            "run",
            "Run a shell command.",
            json!({"type":"object","properties":{"cmd":{"type":"string"},"timeout_s":{"type":"integer"}},"required":["cmd"]}),
        ),
    ]
}

/// A request body in `dialect`, `stream` or not, of the given size class.
pub fn body(dialect: Dialect, size: &str, stream: bool) -> Vec<u8> {
    let agent = size == "agent";
    let v = match dialect {
        Dialect::OpenAi => {
            let mut messages = vec![
                json!({"role":"system","content": if agent { system_prompt() } else { "You are a helpful assistant.".into() }}),
            ];
            messages.push(json!({"role":"user","content":"Write a haiku about proxies."}));
            if agent {
                messages.push(json!({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"src/main.rs\"}"}}]}));
                messages
                    .push(json!({"role":"tool","tool_call_id":"call_1","content": file_text()}));
                messages.push(json!({"role":"assistant","content":"The file prints a greeting."}));
                messages.push(json!({"role":"user","content":"Now make it print the time."}));
            }
            let mut v = json!({"model":"m","messages":messages,"max_tokens":256,"temperature":0.7,"stream":stream});
            if agent {
                v["tools"] = tools().into_iter().map(|(n, d, p)| json!({"type":"function","function":{"name":n,"description":d,"parameters":p}})).collect();
            }
            v
        }
        Dialect::Anthropic => {
            let mut messages =
                vec![json!({"role":"user","content":"Write a haiku about proxies."})];
            if agent {
                messages.push(json!({"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_1","name":"read_file","input":{"path":"src/main.rs"}}]}));
                messages.push(json!({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content": file_text()}]}));
                messages.push(json!({"role":"assistant","content":"The file prints a greeting."}));
                messages.push(json!({"role":"user","content":"Now make it print the time."}));
            }
            let mut v = json!({"model":"m","max_tokens":256,"system": if agent { system_prompt() } else { "You are a helpful assistant.".into() },"messages":messages,"temperature":0.7,"stream":stream});
            if agent {
                v["tools"] = tools()
                    .into_iter()
                    .map(|(n, d, p)| json!({"name":n,"description":d,"input_schema":p}))
                    .collect();
            }
            v
        }
        Dialect::Gemini => {
            let mut contents =
                vec![json!({"role":"user","parts":[{"text":"Write a haiku about proxies."}]})];
            if agent {
                contents.push(json!({"role":"model","parts":[{"functionCall":{"name":"read_file","args":{"path":"src/main.rs"}}}]}));
                contents.push(json!({"role":"user","parts":[{"functionResponse":{"name":"read_file","response":{"content": file_text()}}}]}));
                contents
                    .push(json!({"role":"model","parts":[{"text":"The file prints a greeting."}]}));
                contents
                    .push(json!({"role":"user","parts":[{"text":"Now make it print the time."}]}));
            }
            let system = if agent {
                system_prompt()
            } else {
                "You are a helpful assistant.".into()
            };
            let mut v = json!({"systemInstruction":{"parts":[{"text":system}]},"contents":contents,"generationConfig":{"maxOutputTokens":256,"temperature":0.7}});
            if agent {
                v["tools"] = json!([{"functionDeclarations": tools().into_iter().map(|(n, d, p)| json!({"name":n,"description":d,"parameters":p})).collect::<Vec<_>>()}]);
            }
            v
        }
    };
    serde_json::to_vec(&v).expect("json")
}

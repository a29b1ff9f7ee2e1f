//! Property tests: any split of an upstream byte stream (inside multi-byte UTF-8 characters,
//! inside `\r\n`, one byte at a time) gives byte-identical client output.

use proptest::prelude::*;
use serde_json::json;

use super::checkers::*;
use super::golden::{
    anthropic_canonical, gemini_thought_text_call, openai_reasoning_text, openai_tools_canonical,
};
use crate::{Dialect, ResponseContext};

fn crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    for &b in body {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// An OpenAI stream full of multi-byte characters.
fn openai_multibyte() -> Vec<u8> {
    let c = |delta: serde_json::Value, fr: Option<&str>| {
        json!({"id":"chatcmpl-u","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":delta,"finish_reason":fr}]})
    };
    let mut b = sse_data(&[
        c(
            json!({"role":"assistant","reasoning_content":"思考中…"}),
            None,
        ),
        c(json!({"content":"Ünïcödé 😀🎉 日本語"}), None),
        c(
            json!({"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"q\":\"ñ😀"}}]}),
            None,
        ),
        c(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"\"}"}}]}),
            None,
        ),
        c(json!({}), Some("tool_calls")),
    ]);
    b.extend_from_slice(b"data: [DONE]\n\n");
    b
}

fn cases() -> Vec<(ResponseContext, Vec<u8>)> {
    let mut usage_ctx = ctx(Dialect::OpenAi, Dialect::Anthropic, true, true);
    usage_ctx.include_usage = true;
    let base = vec![
        (
            ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
            openai_reasoning_text(),
        ),
        (
            ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
            openai_tools_canonical(),
        ),
        (
            ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
            openai_multibyte(),
        ),
        (usage_ctx, anthropic_canonical()),
        (
            ctx(Dialect::OpenAi, Dialect::Gemini, true, true),
            gemini_thought_text_call(),
        ),
        (
            ctx(Dialect::Anthropic, Dialect::Gemini, true, true),
            gemini_thought_text_call(),
        ),
        (
            ctx(Dialect::Anthropic, Dialect::OpenAi, false, true),
            openai_multibyte(),
        ),
        (
            ResponseContext::passthrough(Dialect::OpenAi, "m", true),
            openai_tools_canonical(),
        ),
        (
            ResponseContext::passthrough(Dialect::OpenAi, "m", true),
            openai_multibyte(),
        ),
        (
            ResponseContext::passthrough(Dialect::Anthropic, "m", true),
            anthropic_canonical(),
        ),
    ];
    let mut all = Vec::new();
    for (c, b) in base {
        all.push((c.clone(), crlf(&b)));
        all.push((c, b));
    }
    all
}

fn split_at<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::new();
    let mut prev = 0;
    for c in cuts {
        parts.push(&body[prev..c]);
        prev = c;
    }
    parts.push(&body[prev..]);
    parts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_gives_identical_output(case in 0usize..20, cuts in proptest::collection::vec(0usize..4096, 0..40)) {
        let cases = cases();
        let (c, body) = &cases[case % cases.len()];
        let (whole, r1, u1) = run(c.clone(), &[body]);
        let parts = split_at(body, &cuts);
        let (split, r2, u2) = run(c.clone(), &parts);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(r1, r2);
        prop_assert_eq!(u1, u2);
    }

    /// As the gateway's relay feeds a translator: each burst given up (`push_owned`), and what
    /// it made sent (taken) before the next one.
    #[test]
    fn bursts_given_up_give_identical_output(case in 0usize..20, cuts in proptest::collection::vec(0usize..4096, 0..40)) {
        let cases = cases();
        let (c, body) = &cases[case % cases.len()];
        let (whole, r1, u1) = run(c.clone(), &[body]);
        let mut t = super::build(c.clone(), CREATED, SEED);
        let (mut sent, mut out) = (Vec::new(), Vec::new());
        for part in split_at(body, &cuts) {
            t.push_owned(part.to_vec(), &mut out);
            sent.append(&mut out);
        }
        let r2 = t.finish(&mut out);
        sent.append(&mut out);
        t.settle_usage(&sent);
        prop_assert_eq!(&whole, &sent);
        prop_assert_eq!(r1, r2);
        prop_assert_eq!(u1, t.usage());
    }

    #[test]
    fn openai_text_deltas_become_valid_anthropic_text(deltas in proptest::collection::vec("\\PC{0,12}|[ \\n\\t]{0,3}", 0..12)) {
        let mut items: Vec<serde_json::Value> = deltas
            .iter()
            .map(|d| json!({"id":"c","choices":[{"index":0,"delta":{"content":d},"finish_reason":null}]}))
            .collect();
        items.push(json!({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}));
        let body = sse_data(&items);
        let (out, r, _) = run(ctx(Dialect::Anthropic, Dialect::OpenAi, true, true), &[&body]);
        prop_assert!(r.is_ok());
        let replay = check_anthropic(&out);
        let joined: String = deltas.concat();
        let text: String = replay.message["content"].as_array().unwrap().iter()
            .map(|b| b["text"].as_str().unwrap().to_string()).collect();
        if joined.trim().is_empty() {
            prop_assert_eq!(text, "");
        } else {
            prop_assert_eq!(text, joined);
        }
    }
}

#[test]
fn one_byte_at_a_time_for_every_case_and_the_output_passes_the_checkers() {
    for (c, body) in cases() {
        let whole = run(c.clone(), &[&body]).0;
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(whole, run(c.clone(), &bytes).0);
        match (c.client, c.client_stream) {
            (Dialect::Anthropic, true) => assert!(check_anthropic(&whole).stopped),
            (Dialect::OpenAi, true) => {
                check_openai(&whole, c.include_usage);
            }
            _ => {
                serde_json::from_slice::<serde_json::Value>(&whole).unwrap();
            }
        }
    }
}

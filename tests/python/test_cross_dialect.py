"""Cross-dialect translation (issue 3): each official SDK against a model served by an upstream
that speaks another wire format. Marked `cross`.

Every test checks what a client really relies on (text, streamed deltas adding up to the
non-stream answer, tool arguments that parse, thinking blocks, usage) and what the upstream
really received, in its own dialect."""

from __future__ import annotations

import json

import pytest

from conftest import (
    CLIENT_KEY,
    MODELS,
    WEATHER_ARGS,
    WEATHER_SCHEMA,
    assert_upstream_auth,
    has_non_ascii,
)

pytestmark = pytest.mark.cross

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather forecast", "parameters": WEATHER_SCHEMA},
    }
]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Weather forecast", "input_schema": WEATHER_SCHEMA}]
THINKING = {"type": "enabled", "budget_tokens": 1024}


def oai_messages(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def ant_messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def text_of(content) -> str:
    """Text of an Anthropic `content`/`system` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if b.get("type", "text") == "text")


def blocks(content) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def openai_stream(stream) -> dict:
    out = {"text": "", "role": None, "finish": None, "usage": None, "tools": {}, "last_choices": None}
    for chunk in stream:
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        out["last_choices"] = chunk.choices
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        out["role"] = out["role"] or delta.role
        out["text"] += delta.content or ""
        for tc in delta.tool_calls or []:
            slot = out["tools"].setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = slot["id"] or tc.id
            if tc.function:
                slot["name"] += tc.function.name or ""
                slot["arguments"] += tc.function.arguments or ""
        out["finish"] = choice.finish_reason or out["finish"]
    return out


def gemini_texts(body: dict) -> list[str]:
    return [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]


# =========================================================================== OpenAI SDK -> Anthropic


def test_openai_sdk_to_anthropic_upstream(openai_client, mock_requests, marker):
    r = openai_client.chat.completions.create(model="claude", messages=oai_messages(f"hello {marker}"), max_tokens=300)
    assert r.object == "chat.completion"
    msg = r.choices[0].message
    assert msg.role == "assistant"
    assert msg.content and msg.content.strip() and has_non_ascii(msg.content), msg
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == "/v1/messages", seen
    sent = seen.json
    assert sent["model"] == MODELS["claude"][1]
    assert sent["max_tokens"] == 300
    assert text_of(sent.get("system")) == "Be brief.", "the system message becomes Anthropic's top-level system"
    assert [m["role"] for m in sent["messages"]] == ["user"], sent["messages"]
    assert text_of(sent["messages"][0]["content"]) == f"hello {marker}"
    assert not sent.get("stream")
    assert seen.headers.get("anthropic-version")
    assert_upstream_auth(seen, "ant")


def test_openai_sdk_to_anthropic_upstream_without_max_tokens(openai_client, mock_requests, marker):
    """Anthropic requires max_tokens; an OpenAI client need not send it."""
    r = openai_client.chat.completions.create(model="claude", messages=oai_messages(marker))
    assert r.choices[0].message.content
    sent = mock_requests.find(marker).json
    assert isinstance(sent["max_tokens"], int) and sent["max_tokens"] > 0


def test_openai_sdk_stream_to_anthropic_upstream(openai_client, mock_requests, marker):
    full = openai_client.chat.completions.create(model="claude", messages=oai_messages(marker), max_tokens=300)
    got = openai_stream(
        openai_client.chat.completions.create(
            model="claude",
            messages=oai_messages(marker),
            max_tokens=300,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert got["role"] == "assistant"
    assert got["text"] == full.choices[0].message.content
    assert got["finish"] == "stop"
    assert got["last_choices"] == [], "the usage chunk comes last, with no choices"
    assert got["usage"].prompt_tokens > 0 and got["usage"].completion_tokens > 0
    assert mock_requests.find(marker).json.get("stream") is True


def test_openai_raw_stream_from_anthropic_upstream_ends_in_done(raw_http, marker):
    body = {"model": "claude", "stream": True, "messages": oai_messages(marker)}
    with raw_http.stream(
        "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        # SSE comment lines (`: ping`, the translated Anthropic keep-alive) are allowed.
        lines = [line for line in r.iter_lines() if line.strip() and not line.startswith(":")]
    assert all(line.startswith("data:") for line in lines), "no Anthropic `event:` lines leak through"
    data = [line[5:].strip() for line in lines]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1, "one id for the whole stream"


def test_openai_sdk_streamed_tool_call_to_anthropic_then_tool_result(openai_client, mock_requests, marker):
    got = openai_stream(
        openai_client.chat.completions.create(
            model="claude", messages=oai_messages(f"weather? {marker}"), tools=OPENAI_TOOLS, stream=True
        )
    )
    assert got["finish"] == "tool_calls"
    assert list(got["tools"]) == [0], got["tools"]
    call = got["tools"][0]
    assert call["id"] and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == WEATHER_ARGS, call["arguments"]

    sent = mock_requests.find(marker).json
    assert sent["tools"] == [
        {"name": "get_weather", "description": "Weather forecast", "input_schema": WEATHER_SCHEMA}
    ], "OpenAI function tools become Anthropic tools"

    messages = oai_messages(f"weather? {marker}") + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21°C"},
    ]
    r = openai_client.chat.completions.create(model="claude", messages=messages, tools=OPENAI_TOOLS)
    assert r.choices[0].message.content or r.choices[0].message.tool_calls, r

    sent = mock_requests.find(marker).json  # the latest: the second turn
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "user"], sent["messages"]
    use = [b for b in blocks(sent["messages"][1]["content"]) if b["type"] == "tool_use"]
    assert use == [{"type": "tool_use", "id": call["id"], "name": "get_weather", "input": WEATHER_ARGS}], use
    results = [b for b in blocks(sent["messages"][2]["content"]) if b["type"] == "tool_result"]
    assert len(results) == 1 and results[0]["tool_use_id"] == call["id"], sent["messages"][2]
    assert text_of(results[0]["content"]) == "sunny, 21°C"


def test_openai_sdk_errors_on_anthropic_routed_model(narrow_openai_client):
    import openai

    with pytest.raises(openai.PermissionDeniedError):
        narrow_openai_client.chat.completions.create(model="claude", messages=oai_messages("hi"))


def test_openai_sdk_gets_openai_envelope_for_anthropic_upstream_failure(openai_client):
    import openai

    with pytest.raises(openai.APIStatusError) as e:
        openai_client.chat.completions.create(model="broken-claude", messages=oai_messages("hi"))
    assert e.value.status_code >= 500
    assert isinstance(e.value.body, dict) and e.value.body.get("message") and "type" in e.value.body, e.value.body


# =========================================================================== Anthropic SDK -> OpenAI-compatible


def test_anthropic_sdk_to_openai_upstream(anthropic_client, mock_requests, marker):
    m = anthropic_client.messages.create(
        model="gpt", max_tokens=300, system="Be brief.", messages=ant_messages(f"hello {marker}")
    )
    assert m.type == "message" and m.role == "assistant"
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text.strip() and has_non_ascii(m.content[0].text)
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0

    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == "/v1/chat/completions", seen
    sent = seen.json
    assert sent["model"] == MODELS["gpt"][1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"], sent["messages"]
    assert sent["messages"][0]["content"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert_upstream_auth(seen, "oai")


def test_anthropic_sdk_stream_from_openai_upstream(anthropic_client, marker):
    full = anthropic_client.messages.create(model="gpt", max_tokens=300, messages=ant_messages(marker))
    with anthropic_client.messages.stream(model="gpt", max_tokens=300, messages=ant_messages(marker)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == full.content[0].text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_anthropic_sdk_thinking_from_deepseek_reasoning_content(anthropic_client, mock_requests, marker):
    with anthropic_client.messages.stream(
        model="deepseek", max_tokens=2048, thinking=THINKING, messages=ant_messages(marker)
    ) as stream:
        final = stream.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds == ["thinking", "text"], final.content
    assert final.content[0].thinking.strip()
    assert final.content[1].text.strip()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0

    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == "/v1/chat/completions", seen
    assert seen.json["model"] == MODELS["deepseek"][1]
    assert_upstream_auth(seen, "ds")

    m = anthropic_client.messages.create(model="deepseek", max_tokens=2048, thinking=THINKING, messages=ant_messages(marker))
    assert [b.type for b in m.content] == kinds
    assert m.content[0].thinking == final.content[0].thinking
    assert m.content[1].text == final.content[1].text


def test_anthropic_sdk_tool_use_from_deepseek_then_tool_result(anthropic_client, mock_requests, marker):
    with anthropic_client.messages.stream(
        model="deepseek", max_tokens=1024, messages=ant_messages(f"weather? {marker}"), tools=ANTHROPIC_TOOLS
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    assert isinstance(use.input, dict) and use.input == WEATHER_ARGS, use
    assert use.name == "get_weather" and use.id

    sent = mock_requests.find(marker).json
    assert sent["tools"] == OPENAI_TOOLS, "Anthropic tools become OpenAI function tools"

    json_reply = anthropic_client.messages.create(
        model="deepseek", max_tokens=1024, messages=ant_messages(f"weather? {marker}"), tools=ANTHROPIC_TOOLS
    )
    json_use = next(b for b in json_reply.content if b.type == "tool_use")
    assert json_use.input == WEATHER_ARGS and json_reply.stop_reason == "tool_use"

    result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21°C"}
    messages = ant_messages(f"weather? {marker}") + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {"role": "user", "content": [result]},
    ]
    second = anthropic_client.messages.create(model="deepseek", max_tokens=1024, messages=messages, tools=ANTHROPIC_TOOLS)
    assert second.content
    sent = mock_requests.find(marker).json  # the latest: the second turn
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    call = assistant["tool_calls"][0]
    assert call["id"] == use.id and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    tool_msgs = [m for m in sent["messages"] if m["role"] == "tool"]
    assert len(tool_msgs) == 1 and tool_msgs[0]["tool_call_id"] == use.id, sent["messages"]
    assert text_of(tool_msgs[0]["content"]) == "sunny, 21°C"


# =========================================================================== both SDKs -> Gemini


def test_openai_sdk_to_gemini(openai_client, mock_requests, marker):
    r = openai_client.chat.completions.create(model="gemini", messages=oai_messages(f"hello {marker}"))
    msg = r.choices[0].message
    assert msg.content and msg.content.strip() and has_non_ascii(msg.content), msg
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0

    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == f"/v1beta/models/{MODELS['gemini'][1]}:generateContent", seen
    assert f"hello {marker}" in gemini_texts(seen.json)
    system = seen.json.get("systemInstruction") or seen.json.get("system_instruction")
    assert system and "Be brief." in [p.get("text") for p in system["parts"]], seen.json
    assert_upstream_auth(seen, "gem")


def test_openai_sdk_stream_from_gemini(openai_client, mock_requests, marker):
    full = openai_client.chat.completions.create(model="gemini", messages=oai_messages(marker))
    got = openai_stream(
        openai_client.chat.completions.create(
            model="gemini", messages=oai_messages(marker), stream=True, stream_options={"include_usage": True}
        )
    )
    assert got["text"] == full.choices[0].message.content
    assert got["finish"] == "stop"
    assert got["usage"] and got["usage"].completion_tokens > 0
    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == f"/v1beta/models/{MODELS['gemini'][1]}:streamGenerateContent", seen
    assert "alt=sse" in seen.path


def test_openai_sdk_tool_call_from_gemini(openai_client, mock_requests, marker):
    r = openai_client.chat.completions.create(model="gemini", messages=oai_messages(f"weather? {marker}"), tools=OPENAI_TOOLS)
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert call.id and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS

    sent = mock_requests.find(marker).json
    decls = [d for t in sent.get("tools", []) for d in t.get("functionDeclarations") or t.get("function_declarations") or []]
    assert [d["name"] for d in decls] == ["get_weather"], sent

    got = openai_stream(
        openai_client.chat.completions.create(
            model="gemini", messages=oai_messages(f"weather? {marker}"), tools=OPENAI_TOOLS, stream=True
        )
    )
    assert got["finish"] == "tool_calls"
    call = got["tools"][0]
    assert json.loads(call["arguments"]) == WEATHER_ARGS
    assert call["name"] == "get_weather" and call["id"]

    messages = oai_messages(f"weather? {marker}") + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call["id"], "type": "function", "function": {"name": "get_weather", "arguments": call["arguments"]}}],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    second = openai_client.chat.completions.create(model="gemini", messages=messages, tools=OPENAI_TOOLS)
    assert second.choices[0].message.content or second.choices[0].message.tool_calls
    contents = mock_requests.find(marker).json["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"], contents
    fc = [p["functionCall"] for p in contents[1]["parts"] if "functionCall" in p]
    assert len(fc) == 1 and fc[0]["name"] == "get_weather" and fc[0]["args"] == WEATHER_ARGS, contents[1]
    fr = [p["functionResponse"] for p in contents[2]["parts"] if "functionResponse" in p]
    assert len(fr) == 1 and fr[0]["name"] == "get_weather", contents[2]
    assert "sunny" in json.dumps(fr[0]["response"], ensure_ascii=False)


def test_anthropic_sdk_to_gemini(anthropic_client, mock_requests, marker):
    m = anthropic_client.messages.create(model="gemini", max_tokens=300, system="Be brief.", messages=ant_messages(marker))
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text.strip() and has_non_ascii(m.content[0].text)
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0

    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == f"/v1beta/models/{MODELS['gemini'][1]}:generateContent", seen
    assert marker in gemini_texts(seen.json)
    assert_upstream_auth(seen, "gem")

    with anthropic_client.messages.stream(model="gemini", max_tokens=300, system="Be brief.", messages=ant_messages(marker)) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == m.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    assert ":streamGenerateContent" in mock_requests.find(marker).path


def test_anthropic_sdk_tool_use_from_gemini(anthropic_client, marker):
    m = anthropic_client.messages.create(
        model="gemini", max_tokens=300, messages=ant_messages(f"weather? {marker}"), tools=ANTHROPIC_TOOLS
    )
    assert m.stop_reason == "tool_use"
    use = next(b for b in m.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.id and use.input == WEATHER_ARGS

    with anthropic_client.messages.stream(
        model="gemini", max_tokens=300, messages=ant_messages(f"weather? {marker}"), tools=ANTHROPIC_TOOLS
    ) as s:
        final = s.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert isinstance(use.input, dict) and use.input == WEATHER_ARGS
    assert final.stop_reason == "tool_use"


# =========================================================================== thinking + tools, agent loop


def _thinking_tool_loop(client, model: str, marker: str):
    """Turn 1 (thinking + tool_use, streamed) and turn 2 (the whole turn sent back + tool_result)."""
    first = ant_messages(f"weather? {marker}")
    with client.messages.stream(
        model=model, max_tokens=2048, thinking=THINKING, tools=ANTHROPIC_TOOLS, messages=first
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "thinking" and final.content[0].thinking.strip(), final.content
    assert final.content[0].signature, "a thinking block a client can send back carries a signature"
    use = next(b for b in final.content if b.type == "tool_use")
    assert isinstance(use.input, dict) and use.input == WEATHER_ARGS
    messages = first + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    second = client.messages.create(
        model=model, max_tokens=2048, thinking=THINKING, tools=ANTHROPIC_TOOLS, messages=messages
    )
    assert second.content
    return final, use


def test_anthropic_thinking_tool_loop_on_deepseek_echoes_reasoning_content(anthropic_client, mock_requests, marker):
    final, use = _thinking_tool_loop(anthropic_client, "deepseek", marker)
    sent = mock_requests.find(marker).json  # the latest: the second turn
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant.get("reasoning_content") == final.content[0].thinking, "DeepSeek needs its reasoning back"
    assert [c["id"] for c in assistant["tool_calls"]] == [use.id]
    tool = next(m for m in sent["messages"] if m["role"] == "tool")
    assert tool["tool_call_id"] == use.id


def test_anthropic_thinking_tool_loop_on_gemini_keeps_thought_signature(anthropic_client, mock_requests, marker):
    final, use = _thinking_tool_loop(anthropic_client, "gemini", marker)
    sent = mock_requests.find(marker).json  # the latest: the second turn
    model_turn = next(c for c in sent["contents"] if c["role"] == "model")
    calls = [p for p in model_turn["parts"] if "functionCall" in p]
    assert len(calls) == 1 and calls[0]["functionCall"]["args"] == WEATHER_ARGS, model_turn
    assert calls[0].get("thoughtSignature"), f"Gemini's thought signature is restored on replay: {model_turn}"
    assert sent["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    reply = sent["contents"][-1]["parts"]
    assert [p["functionResponse"]["name"] for p in reply if "functionResponse" in p] == ["get_weather"], reply

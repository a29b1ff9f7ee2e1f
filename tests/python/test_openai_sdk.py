"""The official `openai` SDK against the gateway's OpenAI surface, routed to an OpenAI-dialect
upstream (the mock): pass-through behaviour, streaming, tools, models, embeddings, errors."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import (
    CLIENT_KEY,
    MODELS,
    NARROW_MODELS,
    WEATHER_ARGS,
    WEATHER_SCHEMA,
    assert_upstream_auth,
    has_non_ascii,
)

TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather forecast", "parameters": WEATHER_SCHEMA},
    }
]


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def collect_stream(stream) -> dict:
    """Everything a client assembles from a chat.completions stream."""
    out = {"text": "", "role": None, "finish": None, "usage": None, "tools": {}, "chunks": 0, "empty_choices": 0}
    for chunk in stream:
        out["chunks"] += 1
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        if not chunk.choices:
            out["empty_choices"] += 1
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.role:
            out["role"] = delta.role
        if delta.content:
            out["text"] += delta.content
        for tc in delta.tool_calls or []:
            slot = out["tools"].setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
            if tc.function and tc.function.name:
                slot["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                slot["arguments"] += tc.function.arguments
        if choice.finish_reason:
            out["finish"] = choice.finish_reason
    return out


# --------------------------------------------------------------------------- chat, JSON


def test_chat_completion_returns_the_upstream_answer(openai_client, mock_requests, marker):
    r = openai_client.chat.completions.create(model="gpt", messages=user(f"hello {marker}"))
    assert r.object == "chat.completion"
    assert r.id
    msg = r.choices[0].message
    assert msg.role == "assistant"
    assert msg.content and msg.content.strip(), r
    assert has_non_ascii(msg.content), f"the mock's text has non-ASCII characters; got {msg.content!r}"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage

    seen = mock_requests.find(marker)
    assert seen.method == "POST"
    assert seen.path.split("?")[0] == "/v1/chat/completions", seen
    assert seen.json["model"] == MODELS["gpt"][1], "the public model id is renamed to the upstream one"
    assert seen.json["messages"][-1]["content"] == f"hello {marker}"
    assert_upstream_auth(seen, "oai")


def test_same_request_gives_the_same_text(openai_client, marker):
    a = openai_client.chat.completions.create(model="gpt", messages=user(marker))
    b = openai_client.chat.completions.create(model="gpt", messages=user(marker))
    assert a.choices[0].message.content == b.choices[0].message.content


def test_unicode_prompt_reaches_upstream_intact(openai_client, mock_requests, marker):
    prompt = f"{marker} héllo 世界 🚀 \u2028 \"quoted\" \\ back"
    r = openai_client.chat.completions.create(model="gpt", messages=user(prompt))
    assert r.choices[0].message.content
    seen = mock_requests.find(marker)
    assert seen.json["messages"][-1]["content"] == prompt


def test_sampling_parameters_pass_through(openai_client, mock_requests, marker):
    openai_client.chat.completions.create(
        model="gpt",
        messages=user(marker),
        temperature=0.25,
        top_p=0.5,
        max_completion_tokens=77,
        stop=["\n\n"],
        seed=7,
        user="user-123",
        extra_body={"vendor_field": {"kept": True}},
    )
    sent = mock_requests.find(marker).json
    assert sent["temperature"] == 0.25 and sent["top_p"] == 0.5, sent
    assert sent["max_completion_tokens"] == 77 and sent["stop"] == ["\n\n"] and sent["seed"] == 7, sent
    assert sent["user"] == "user-123"
    assert sent["vendor_field"] == {"kept": True}, "unknown fields are passed through on a same-dialect route"


# --------------------------------------------------------------------------- chat, streaming


def test_stream_concatenates_to_the_non_stream_text(openai_client, mock_requests, marker):
    full = openai_client.chat.completions.create(model="gpt", messages=user(marker))
    stream = openai_client.chat.completions.create(model="gpt", messages=user(marker), stream=True)
    got = collect_stream(stream)
    assert got["role"] == "assistant"
    assert got["chunks"] >= 3, "the answer arrives in several chunks"
    assert got["text"] == full.choices[0].message.content
    assert got["finish"] == "stop"
    assert got["usage"] is None and got["empty_choices"] == 0, "no usage chunk unless the client asked"

    sent = mock_requests.find(marker).json
    assert sent["stream"] is True and sent["model"] == MODELS["gpt"][1]


def test_stream_with_include_usage_ends_with_a_usage_chunk(openai_client, marker):
    stream = openai_client.chat.completions.create(
        model="gpt", messages=user(marker), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [], "the usage chunk has no choices"
    assert last.usage is not None, last
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0, last.usage
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()


def test_raw_stream_is_sse_ending_in_done(raw_http, marker):
    body = {"model": "gpt", "stream": True, "messages": user(marker)}
    with raw_http.stream(
        "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    assert data.count("[DONE]") == 1
    for d in data[:-1]:
        assert json.loads(d)["object"] == "chat.completion.chunk"


def test_streaming_with_statement_closes_cleanly_mid_stream(openai_client, marker):
    """A client that stops reading early must not break the next request."""
    with openai_client.chat.completions.create(model="gpt", messages=user(marker), stream=True) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    r = openai_client.chat.completions.create(model="gpt", messages=user(marker))
    assert r.choices[0].message.content


# --------------------------------------------------------------------------- tools


def test_tool_call_json(openai_client, mock_requests, marker):
    r = openai_client.chat.completions.create(model="gpt", messages=user(f"weather? {marker}"), tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1, choice.message
    call = calls[0]
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS

    sent = mock_requests.find(marker).json
    assert sent["tools"] == TOOLS, "tools reach the upstream unchanged"


def test_tool_call_streamed_and_answered(openai_client, mock_requests, marker):
    stream = openai_client.chat.completions.create(
        model="gpt", messages=user(f"weather? {marker}"), tools=TOOLS, stream=True
    )
    got = collect_stream(stream)
    assert got["finish"] == "tool_calls"
    assert list(got["tools"]) == [0], got["tools"]
    call = got["tools"][0]
    assert call["id"] and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == WEATHER_ARGS, call["arguments"]

    # Second turn: the tool result goes back; the upstream sees it verbatim.
    messages = user(f"weather? {marker}") + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": f"sunny, 21°C {marker}"},
    ]
    r = openai_client.chat.completions.create(model="gpt", messages=messages, tools=TOOLS)
    assert r.choices[0].message.content or r.choices[0].message.tool_calls
    sent = mock_requests.find(marker).json  # the latest: the second turn
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call["id"], "content": f"sunny, 21°C {marker}"}


# --------------------------------------------------------------------------- reasoning (DeepSeek-style)


def test_reasoning_content_passes_through_from_a_deepseek_upstream(openai_client, mock_requests, marker):
    r = openai_client.chat.completions.create(model="deepseek", messages=user(marker), reasoning_effort="high")
    msg = r.choices[0].message
    reasoning = (msg.model_extra or {}).get("reasoning_content")
    assert isinstance(reasoning, str) and reasoning.strip(), f"no reasoning_content in {msg}"
    assert msg.content and msg.content.strip()
    seen = mock_requests.find(marker)
    assert seen.json["model"] == MODELS["deepseek"][1]
    assert_upstream_auth(seen, "ds")

    stream = openai_client.chat.completions.create(
        model="deepseek", messages=user(marker), reasoning_effort="high", stream=True
    )
    streamed_reasoning, text, order = "", "", []
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        piece = (delta.model_extra or {}).get("reasoning_content")
        if piece:
            streamed_reasoning += piece
            order.append("reasoning")
        if delta.content:
            text += delta.content
            order.append("text")
    assert streamed_reasoning == reasoning
    assert text == msg.content
    assert order.index("text") > max(i for i, k in enumerate(order) if k == "reasoning"), "reasoning comes first"


# --------------------------------------------------------------------------- models, embeddings


def test_models_list_shows_every_public_model(openai_client):
    models = list(openai_client.models.list())
    assert sorted(m.id for m in models) == sorted(MODELS)
    for m in models:
        assert m.object == "model"
        assert m.owned_by
        assert isinstance(m.created, int)
    assert not any(up in {m.id for m in models} for _, up in MODELS.values()), "upstream names stay hidden"


def test_models_list_is_filtered_by_the_key_allowlist(narrow_openai_client):
    assert [m.id for m in narrow_openai_client.models.list()] == NARROW_MODELS


def test_embeddings(openai_client, mock_requests, marker):
    r = openai_client.embeddings.create(model="embed", input=[f"first {marker}", "second"], encoding_format="float")
    assert r.object == "list"
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        assert d.object == "embedding"
        assert len(d.embedding) > 0 and all(isinstance(x, float) for x in d.embedding)
    assert r.data[0].embedding != r.data[1].embedding, "different inputs, different vectors"
    assert r.usage.prompt_tokens > 0

    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == "/v1/embeddings"
    assert seen.json["model"] == MODELS["embed"][1]
    assert_upstream_auth(seen, "oai")

    # The SDK's default asks for base64 and decodes it itself: same vectors either way.
    again = openai_client.embeddings.create(model="embed", input=[f"first {marker}", "second"])
    assert [len(d.embedding) for d in again.data] == [len(d.embedding) for d in r.data]
    for a, b in zip(again.data, r.data):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6, abs=1e-6)


# --------------------------------------------------------------------------- errors


def test_wrong_key_is_authentication_error(openai_factory):
    client = openai_factory("sk-wrong")
    with pytest.raises(openai.AuthenticationError) as e:
        client.chat.completions.create(model="gpt", messages=user("hi"))
    assert e.value.status_code == 401
    assert e.value.type == "authentication_error", e.value.body
    assert e.value.message


def test_wrong_key_on_models_is_authentication_error(openai_factory):
    with pytest.raises(openai.AuthenticationError):
        openai_factory("sk-wrong").models.list()


def test_model_outside_allowlist_is_permission_denied(narrow_openai_client, mock_requests, marker):
    with pytest.raises(openai.PermissionDeniedError) as e:
        narrow_openai_client.chat.completions.create(model="claude", messages=user(marker))
    assert e.value.status_code == 403
    assert isinstance(e.value.body, dict) and e.value.body.get("message"), e.value.body
    assert not mock_requests.find_all(marker), "a refused request never reaches the upstream"
    # The allowed model still works with the same key.
    ok = narrow_openai_client.chat.completions.create(model="gpt", messages=user(marker))
    assert ok.choices[0].message.content


def test_unknown_model_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.chat.completions.create(model="no-such-model", messages=user("hi"))
    assert e.value.status_code == 404
    assert "no-such-model" in e.value.message


def test_unknown_model_in_stream_request_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="no-such-model", messages=user("hi"), stream=True)


def test_messages_of_the_wrong_type_is_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(model="gpt", messages=[], extra_body={"messages": {}})
    assert e.value.status_code == 400
    assert e.value.type == "invalid_request_error"


def test_missing_messages_is_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.post("/chat/completions", body={"model": "gpt"}, cast_to=object)
    assert e.value.param == "messages", e.value.body


def test_malformed_json_gets_the_openai_envelope(raw_http):
    r = raw_http.post(
        "/v1/chat/completions",
        content=b'{"model": ',
        headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert set(err) >= {"message", "type", "param", "code"}


def test_upstream_failure_surfaces_as_an_sdk_error(openai_client):
    with pytest.raises(openai.APIStatusError) as e:
        openai_client.chat.completions.create(model="broken", messages=user("hi"))
    assert e.value.status_code >= 500, e.value
    assert isinstance(e.value.body, dict) and e.value.body.get("message"), e.value.body

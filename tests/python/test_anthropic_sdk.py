"""The official `anthropic` SDK against the gateway's Anthropic surface, routed to an
Anthropic-dialect upstream (the mock): messages (JSON and streamed), tools, thinking,
count_tokens, models, errors, on both base URLs (/anthropic and the bare host)."""

from __future__ import annotations


import anthropic
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

TOOLS = [{"name": "get_weather", "description": "Weather forecast", "input_schema": WEATHER_SCHEMA}]
THINKING = {"type": "enabled", "budget_tokens": 1024}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(params=["/anthropic", ""], ids=["prefix", "bare"])
def client(request, anthropic_factory):
    """The same tests on base_url http://ADDR/anthropic and on http://ADDR (/v1/messages alias)."""
    return anthropic_factory(base=request.param)


# --------------------------------------------------------------------------- messages, JSON


def test_message_returns_the_upstream_answer(client, mock_requests, marker):
    m = client.messages.create(model="claude", max_tokens=256, system="Be brief.", messages=user(f"hello {marker}"))
    assert m.type == "message" and m.role == "assistant" and m.id
    assert [b.type for b in m.content] == ["text"], m.content
    text = m.content[0].text
    assert text.strip()
    assert has_non_ascii(text), f"the mock's text has non-ASCII characters; got {text!r}"
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage

    seen = mock_requests.find(marker)
    assert seen.method == "POST"
    assert seen.path.split("?")[0] == "/v1/messages", seen
    assert seen.json["model"] == MODELS["claude"][1]
    assert seen.json["system"] == "Be brief."
    assert seen.json["max_tokens"] == 256
    assert seen.json["messages"] == user(f"hello {marker}")
    assert seen.headers.get("anthropic-version"), "anthropic-version reaches the upstream"
    assert_upstream_auth(seen, "ant")


def test_bearer_token_auth_like_claude_code(anthropic_factory, mock_requests, marker):
    c = anthropic_factory(api_key=None, auth_token=CLIENT_KEY, base="")
    m = c.messages.create(model="claude", max_tokens=64, messages=user(marker))
    assert m.content[0].text
    assert_upstream_auth(mock_requests.find(marker), "ant")


def test_beta_header_is_forwarded(anthropic_client, mock_requests, marker):
    m = anthropic_client.messages.create(
        model="claude",
        max_tokens=64,
        messages=user(marker),
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert m.content
    assert "interleaved-thinking-2025-05-14" in mock_requests.find(marker).headers.get("anthropic-beta", "")


def test_multi_turn_with_content_blocks(anthropic_client, mock_requests, marker):
    messages = [
        {"role": "user", "content": [{"type": "text", "text": f"first {marker}"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "réponse"}]},
        {"role": "user", "content": [{"type": "text", "text": "second 世界"}]},
    ]
    m = anthropic_client.messages.create(
        model="claude",
        max_tokens=64,
        messages=messages,
        stop_sequences=["END"],
        metadata={"user_id": "user-123"},
        extra_body={"temperature": 0.3, "vendor_field": {"kept": True}},
    )
    assert m.content[0].text
    sent = mock_requests.find(marker).json
    assert sent["messages"] == messages
    assert sent["stop_sequences"] == ["END"] and sent["metadata"] == {"user_id": "user-123"}, sent
    assert sent["temperature"] == 0.3
    assert sent["vendor_field"] == {"kept": True}, "unknown fields are passed through on a same-dialect route"


# --------------------------------------------------------------------------- streaming


def test_stream_text_matches_the_json_answer(client, mock_requests, marker):
    full = client.messages.create(model="claude", max_tokens=256, messages=user(marker))
    with client.messages.stream(model="claude", max_tokens=256, messages=user(marker)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 2, "the answer arrives in several deltas"
    assert "".join(pieces) == full.content[0].text
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == full.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    sent = mock_requests.find(marker).json
    assert sent["stream"] is True and sent["model"] == MODELS["claude"][1]


def test_raw_stream_event_sequence(anthropic_client, marker):
    events = list(anthropic_client.messages.create(model="claude", max_tokens=64, messages=user(marker), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    assert "content_block_start" in kinds and "content_block_delta" in kinds and "content_block_stop" in kinds
    assert kinds[-2] == "message_delta", kinds
    assert events[0].message.usage.input_tokens > 0
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens > 0


def test_stream_helpers_get_final_text(anthropic_client, marker):
    with anthropic_client.messages.stream(model="claude", max_tokens=64, messages=user(marker)) as stream:
        text = stream.get_final_text()
    assert text.strip() and has_non_ascii(text)


# --------------------------------------------------------------------------- tools


def test_tool_use_json(anthropic_client, mock_requests, marker):
    m = anthropic_client.messages.create(model="claude", max_tokens=256, messages=user(f"weather? {marker}"), tools=TOOLS)
    assert m.stop_reason == "tool_use"
    uses = [b for b in m.content if b.type == "tool_use"]
    assert len(uses) == 1, m.content
    assert uses[0].name == "get_weather" and uses[0].id
    assert uses[0].input == WEATHER_ARGS
    assert mock_requests.find(marker).json["tools"] == TOOLS


def test_tool_use_streamed_then_tool_result(client, mock_requests, marker):
    with client.messages.stream(
        model="claude", max_tokens=256, messages=user(f"weather? {marker}"), tools=TOOLS
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    assert isinstance(use.input, dict) and use.input == WEATHER_ARGS, use
    assert use.name == "get_weather" and use.id

    result = {"type": "tool_result", "tool_use_id": use.id, "content": f"sunny, 21°C {marker}"}
    messages = user(f"weather? {marker}") + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {"role": "user", "content": [result]},
    ]
    second = client.messages.create(model="claude", max_tokens=256, messages=messages, tools=TOOLS)
    assert second.content, second
    sent = mock_requests.find(marker).json  # the latest: the second turn
    assert sent["messages"][-1] == {"role": "user", "content": [result]}
    assert sent["messages"][-2]["content"][-1]["type"] == "tool_use"


# --------------------------------------------------------------------------- thinking


def test_thinking_json_and_stream(anthropic_client, marker):
    m = anthropic_client.messages.create(model="claude", max_tokens=2048, thinking=THINKING, messages=user(marker))
    kinds = [b.type for b in m.content]
    assert kinds[0] == "thinking" and kinds[-1] == "text", kinds
    assert m.content[0].thinking.strip()
    assert m.content[-1].text.strip()

    with anthropic_client.messages.stream(
        model="claude", max_tokens=2048, thinking=THINKING, messages=user(marker)
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == kinds
    assert final.content[0].thinking == m.content[0].thinking
    assert final.content[-1].text == m.content[-1].text


def test_no_thinking_unless_asked(anthropic_client, marker):
    m = anthropic_client.messages.create(model="claude", max_tokens=256, messages=user(marker))
    assert all(b.type != "thinking" for b in m.content)


# --------------------------------------------------------------------------- count_tokens, models


def test_count_tokens(client, mock_requests, marker):
    r = client.messages.count_tokens(model="claude", messages=user(f"count these words {marker}"))
    assert isinstance(r.input_tokens, int) and r.input_tokens > 0
    seen = mock_requests.find(marker)
    assert seen.path.split("?")[0] == "/v1/messages/count_tokens", seen
    assert seen.json["model"] == MODELS["claude"][1]
    assert_upstream_auth(seen, "ant")


def test_models_list(anthropic_client):
    models = list(anthropic_client.models.list())
    assert sorted(m.id for m in models) == sorted(MODELS)
    for m in models:
        assert m.type == "model"
        assert m.display_name


def test_models_list_is_filtered_by_the_key_allowlist(narrow_anthropic_client):
    assert [m.id for m in narrow_anthropic_client.models.list()] == NARROW_MODELS


# --------------------------------------------------------------------------- errors


def test_wrong_key_is_authentication_error(anthropic_factory):
    with pytest.raises(anthropic.AuthenticationError) as e:
        anthropic_factory("sk-wrong").messages.create(model="claude", max_tokens=16, messages=user("hi"))
    assert e.value.status_code == 401
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "authentication_error", e.value.body


def test_wrong_key_on_the_bare_path_is_authentication_error(anthropic_factory):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_factory("sk-wrong", base="").messages.create(model="claude", max_tokens=16, messages=user("hi"))


def test_model_outside_allowlist_is_permission_denied(narrow_anthropic_client, mock_requests, marker):
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        narrow_anthropic_client.messages.create(model="claude", max_tokens=16, messages=user(marker))
    assert e.value.status_code == 403
    assert e.value.body["error"]["type"] == "permission_error", e.value.body
    assert not mock_requests.find_all(marker), "a refused request never reaches the upstream"


def test_model_outside_allowlist_in_stream_is_permission_denied(narrow_anthropic_client):
    with pytest.raises(anthropic.PermissionDeniedError):
        with narrow_anthropic_client.messages.stream(model="claude", max_tokens=16, messages=user("hi")) as s:
            s.get_final_message()


def test_unknown_model_is_not_found(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client.messages.create(model="no-such-model", max_tokens=16, messages=user("hi"))
    assert e.value.status_code == 404
    assert e.value.body["error"]["type"] == "not_found_error", e.value.body


def test_messages_of_the_wrong_type_is_bad_request(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(model="claude", max_tokens=16, messages=[], extra_body={"messages": {}})
    assert e.value.status_code == 400
    assert e.value.body["error"]["type"] == "invalid_request_error", e.value.body


def test_malformed_json_gets_the_anthropic_envelope(raw_http):
    r = raw_http.post(
        "/anthropic/v1/messages",
        content=b'{"model": ',
        headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    assert body["error"]["message"]


def test_upstream_failure_surfaces_as_an_sdk_error(anthropic_client):
    with pytest.raises(anthropic.APIStatusError) as e:
        anthropic_client.messages.create(model="broken-claude", max_tokens=16, messages=user("hi"))
    assert e.value.status_code >= 500, e.value
    assert e.value.body["type"] == "error" and e.value.body["error"]["message"], e.value.body


def test_thinking_signature_round_trips_in_a_tool_loop(anthropic_client, mock_requests, marker):
    """Claude Code's loop: thinking + tool_use, then the whole assistant turn sent back."""
    with anthropic_client.messages.stream(
        model="claude", max_tokens=2048, thinking=THINKING, tools=TOOLS, messages=user(f"weather? {marker}")
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].signature, final.content
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == WEATHER_ARGS

    turn = [b.model_dump(exclude_none=True) for b in final.content]
    messages = user(f"weather? {marker}") + [
        {"role": "assistant", "content": turn},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    second = anthropic_client.messages.create(
        model="claude", max_tokens=2048, thinking=THINKING, tools=TOOLS, messages=messages
    )
    assert second.content
    sent = mock_requests.find(marker).json  # the latest: the second turn
    assert sent["messages"][1] == {"role": "assistant", "content": turn}, "the signed turn reaches the upstream as sent"

wrk.method = "POST"
wrk.path = "/v1/messages"
wrk.headers["x-api-key"] = "ok-bench"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"model":"claude-bench","max_tokens":100,"messages":[{"role":"user","content":"hello there"}],"stream":true}'

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["authorization"] = "Bearer ok-bench"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"model":"gpt-bench","messages":[{"role":"user","content":"hello there, how are you?"}],"stream":true,"stream_options":{"include_usage":true}}'

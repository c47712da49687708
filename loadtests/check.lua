-- wrk script: POST /api/v1/check for a random client among 10,000, under the `per-user` rule
-- (bursts of 20, then 10 a second per client), so that most decisions admit and write.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- The caller's key the limiter was started with (RATE_LIMITER_CALLER_KEY); the ceiling ignores it.
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("API_KEY") or "sk_b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0")
math.randomseed(os.time())
request = function()
  local body = string.format('{"rule":"per-user","key":"client:%d"}', math.random(0, 9999))
  return wrk.format(nil, "/api/v1/check", nil, body)
end

-- wrk script: GET one path (BENCH_PATH) with the bearer key (BENCH_KEY),
-- and a report in `key: value` lines like wrk-random-id.lua's (the table
-- reads them). The proxy benchmark sends the same GET directly to the fake
-- API and through tokend's proxy.
local path = os.getenv("BENCH_PATH") or "/"
local auth = "Bearer " .. (os.getenv("BENCH_KEY") or "")
local formatted

init = function(args)
  formatted = wrk.format("GET", path, { ["Authorization"] = auth })
end

request = function()
  return formatted
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local non2xx = summary.errors.status or 0
  io.write(string.format("requests: %d\n", summary.requests))
  io.write(string.format("non_2xx: %d\n", non2xx))
  io.write(string.format("socket_errors: %d\n",
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("rps: %.0f\n", summary.requests / secs))
  io.write(string.format("p50_us: %d\n", latency:percentile(50)))
  io.write(string.format("p99_us: %d\n", latency:percentile(99)))
end

-- wrk script: GET /v1/tokens/{random seeded id} with the bearer key, and a
-- report in `key: value` lines (the table reads them).
-- Environment: BENCH_IDS (how many ids were seeded), BENCH_KEY (the client key).
local ids = tonumber(os.getenv("BENCH_IDS") or "100000")
local auth = "Bearer " .. (os.getenv("BENCH_KEY") or "")
local headers = { ["Authorization"] = auth }

-- Requests are formatted up front: formatting one per call makes wrk, not
-- the server, the bottleneck. 16,384 random ids per thread, cycled.
local pool = {}
local n = 0

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for i = 1, 16384 do
    local path = string.format("/v1/tokens/cred-%07d", math.random(0, ids - 1))
    pool[i] = wrk.format("GET", path, headers)
  end
end

request = function()
  n = n % 16384 + 1
  return pool[n]
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

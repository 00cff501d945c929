-- wrk script: the fake token endpoint's own maximum rate, with the request
-- tokend's Cronofy client sends for a refresh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.body = '{"client_id":"bench","client_secret":"bench-secret","grant_type":"refresh_token",'
  .. '"refresh_token":"rt-00000000000000000000000000042"}'

done = function(summary, latency, requests)
  io.write(string.format("requests: %d\n", summary.requests))
  io.write(string.format("non_2xx: %d\n", summary.errors.status or 0))
  io.write(string.format("rps: %.0f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("p50_us: %d\n", latency:percentile(50)))
  io.write(string.format("p99_us: %d\n", latency:percentile(99)))
end

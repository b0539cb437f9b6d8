-- Shared by the wrk scripts: seeds each thread's random numbers apart and prints one RESULT line
-- (key=value) that bench/run.sh reads. Latencies are wrk's (closed loop: coordinated omission).
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_no or 0))
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f throughput=%.1f ok_throughput=%.1f p50_ms=%.3f " ..
    "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors=%d status_errors=%d socket_errors=%d\n",
    summary.requests, seconds, summary.requests / seconds, (summary.requests - e.status) / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, socket_errors + e.status, e.status, socket_errors))
end

-- wrk script for benchmarks/webhooks.py: Knowlarity pushes (form-encoded POST), a unique call id each,
-- 30% from a pool of 2,000 repeat callers, 70% from new numbers; one call in four missed.
local counter = 0
local tid = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
  math.randomseed(os.time() * 1000 + tid)
end

request = function()
  counter = counter + 1
  local caller
  if math.random() < 0.3 then
    caller = string.format("9190000%05d", math.random(0, 1999))
  else
    caller = string.format("919%09d", math.random(100000000, 999999999))
  end
  local missed = math.random() < 0.25
  local body = "callid=bench-" .. tid .. "-" .. counter .. "-" .. math.random(1, 1000000000)
    .. "&caller_id=%2B" .. caller
    .. "&dispnumber=%2B918000000010"
    .. "&call_duration=" .. (missed and "0" or "93")
    .. "&destination=" .. (missed and "Missed+Call" or "%2B917000000100")
    .. "&start_time=2025-12-06+11%3A11%3A21.000000%2B05%3A30"
    .. "&end_time=2025-12-06+11%3A12%3A54.000000%2B05%3A30"
    .. "&call_type=incoming&timezone=Asia%2FKolkata&resource_url="
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "status_errors": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect, e.read, e.write, e.timeout))
end

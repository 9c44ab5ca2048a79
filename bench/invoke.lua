-- wrk script for the sync-throughput figure (bench/run.py writes the request file).
--   wrk -t2 -c16 -d10s -s bench/invoke.lua http://127.0.0.1:PORT -- /path/to/request.http
-- An optional second argument is the expected status (default 200; 202 for Event invokes):
--   wrk ... -s bench/invoke.lua http://127.0.0.1:PORT -- /path/to/request.http 202
-- The request file holds one pre-signed HTTP/1.1 request: request line, header lines, blank
-- line, body.  This script sets wrk.method, wrk.path, wrk.headers and wrk.body from it, then
-- counts every response that is not the expected status or carries X-Amz-Function-Error: a benchmark of
-- errors is worthless, so done() prints the counts on a line bench/run.py parses.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local function load_request(path)
   local f = assert(io.open(path, "rb"), "cannot open request file " .. tostring(path))
   local data = f:read("*a")
   f:close()
   local head_end = assert(data:find("\r\n\r\n", 1, true), "request file has no header terminator")
   local head = data:sub(1, head_end - 1)
   local body = data:sub(head_end + 4)
   local method, path_, headers, first = nil, nil, {}, true
   for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
      if first then
         method, path_ = line:match("^(%S+)%s+(%S+)")
         first = false
      else
         local name, value = line:match("^([^:]+):%s*(.*)$")
         if name then
            headers[name] = value
         end
      end
   end
   return method, path_, headers, body
end

function init(args)
   local method, path_, headers, body = load_request(args[1])
   wrk.method = method
   wrk.path = path_
   wrk.headers = headers
   wrk.body = body
   expected = tonumber(args[2] or "200")
   req = wrk.format(method, path_, headers, body)
   responses = 0
   bad_status = 0
   function_errors = 0
   first_bad = ""
end

function request()
   return req
end

function response(status, headers, body)
   responses = responses + 1
   if status ~= expected then
      bad_status = bad_status + 1
      if first_bad == "" then
         first_bad = tostring(status) .. " " .. tostring(body):sub(1, 200)
      end
      return
   end
   for name, value in pairs(headers) do
      if name:lower() == "x-amz-function-error" then
         function_errors = function_errors + 1
         if first_bad == "" then
            first_bad = "FunctionError=" .. value .. " " .. tostring(body):sub(1, 200)
         end
      end
   end
end

function done(summary, latency, requests)
   local total, bad, fn_err, sample = 0, 0, 0, ""
   for _, t in ipairs(threads) do
      total = total + t:get("responses")
      bad = bad + t:get("bad_status")
      fn_err = fn_err + t:get("function_errors")
      local s = t:get("first_bad")
      if sample == "" and s ~= nil then
         sample = s
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d responses=%d non200=%d function_errors=%d " ..
      "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d status_errors=%d " ..
      "p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, total, bad, fn_err,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(99)))
   if sample ~= "" then
      io.write("BENCH_FIRST_BAD " .. sample:gsub("[\r\n]", " ") .. "\n")
   end
end

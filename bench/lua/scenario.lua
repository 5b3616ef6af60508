-- wrk script of the platform benchmark. BENCH_SCENARIO picks the request:
--   rest-user      GET /api/v1/users/{id}
--   graphql-user   POST /graphql, query user(id)
--   graphql-page   POST /graphql, 50 users with their orders
--   create-order   POST /api/v1/orders
-- BENCH_USER_IDS names a file with one user id per line; each request takes
-- one at random. BENCH_TOKEN is the bearer token that every request sends.
-- done() prints the results as one JSON line.

local scenario = os.getenv("BENCH_SCENARIO")
local ids = {}
for line in io.lines(os.getenv("BENCH_USER_IDS")) do
  ids[#ids + 1] = line
end

local token = os.getenv("BENCH_TOKEN")
if token == nil or token == "" then
  error("BENCH_TOKEN is not set: the gateway requires a bearer token")
end
local authorization = "Bearer " .. token

-- wrk.format sends a given header table in place of wrk's -H headers, so
-- each table carries the token itself.
local get_headers = { ["Authorization"] = authorization }
local json = { ["Content-Type"] = "application/json", ["Authorization"] = authorization }

local page_body = '{"query":"{ users(first: 50) { nodes { id name orders(first: 5) { id status total } } } }"}'

local function random_id()
  return ids[math.random(#ids)]
end

function init(args)
  -- Each thread has its own Lua state; seed each one differently.
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  if scenario == "rest-user" then
    return wrk.format("GET", "/api/v1/users/" .. random_id(), get_headers)
  elseif scenario == "graphql-user" then
    local body = '{"query":"query ($id: ID!) { user(id: $id) { id name email status } }",'
      .. '"variables":{"id":"' .. random_id() .. '"}}'
    return wrk.format("POST", "/graphql", json, body)
  elseif scenario == "graphql-page" then
    return wrk.format("POST", "/graphql", json, page_body)
  elseif scenario == "create-order" then
    local body = '{"user_id":"' .. random_id() .. '","currency":"IDR",'
      .. '"items":[{"sku":"KOPI-250G","quantity":2,"unit_price":85000}],'
      .. '"shipping_address":{"recipient":"Bench User","line1":"Jl. Merdeka 17",'
      .. '"city":"Jakarta","postal_code":"10110","country":"ID"}}'
    return wrk.format("POST", "/api/v1/orders", json, body)
  end
  error("unknown BENCH_SCENARIO " .. tostring(scenario))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,'
      .. '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end

-- wrk script: POST /api/v1/users with a new user_id on every request.
-- Usage: wrk ... -H "X-API-Key: KEY" http://host:port/api/v1/users -- RUN_PREFIX
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  prefix = (args[1] or "bench") .. "-" .. tid .. "-"
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local id = prefix .. counter
  local body = '{"user_id":"' .. id .. '","email":"' .. id .. '@example.com","name":"Bench User"}'
  return wrk.format(nil, nil, nil, body)
end

-- wrk: 16 pipelined GETs per connection per round (TechEmpower plaintext
-- style), for tests/bench/bench_http.py.
init = function(args)
  local r = {}
  for i = 1, 16 do
    r[i] = wrk.format(nil)
  end
  req = table.concat(r)
end

request = function()
  return req
end

-- wrk script: each request is `depth` pipelined GETs of one path (TechEmpower's plaintext
-- pipelining). Usage: wrk -s perf/load/pipeline.lua URL -- /plaintext 16
-- wrk counts responses, so its requests/s is responses per second.
init = function(args)
  local path = args[1] or "/plaintext"
  local depth = tonumber(args[2]) or 16
  local parts = {}
  for i = 1, depth do
    parts[i] = wrk.format("GET", path)
  end
  batch = table.concat(parts)
end

request = function()
  return batch
end

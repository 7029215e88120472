--[[ renew: heartbeat; extends the leases a worker still holds (one per batch: see open_batch in _lib).
KEYS[1] {p}:leases  zset
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] lease_ms; then 2 per task the worker runs: id, token
Returns: flat array id, token of those whose lease was lost (their jobs must stop).
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local deadline = now + tonumber(ARGV[3])
local lost = {}
local renewed = {} -- batch -> whether its lease is still there (and renewed now)
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local b = holds(tag, id, token) and batch_of(token)
  if b and renewed[b] == nil then
    renewed[b] = rcall('ZSCORE', KEYS[1], b) ~= false
    if renewed[b] then rcall('ZADD', KEYS[1], 'XX', deadline, b) end
  end
  if not (b and renewed[b]) then
    table.insert(lost, id)
    table.insert(lost, token)
  end
end
return lost

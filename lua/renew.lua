--[[ renew: heartbeat; extends the leases a worker still holds.
KEYS[1] {p}:leases  zset
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] lease_ms; then 2 per lease: id, token
Returns: flat array id, token of the leases lost (their jobs must stop).
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local deadline = now + tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if holds(tag, id, token) and rcall('ZSCORE', KEYS[1], id) then
    rcall('ZADD', KEYS[1], 'XX', deadline, id)
  else
    table.insert(lost, id)
    table.insert(lost, token)
  end
end
return lost

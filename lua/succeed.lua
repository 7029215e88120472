--[[ succeed: records successful attempts (a batch); each releases its lease and resolves its DAG children.
KEYS[1] {p}:leases  zset
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] key_ttl_ms; then 3 per attempt:
        id, token, result ("" = no result)
Returns: flat array id, token of the attempts refused (the token no longer holds the lease).
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local key_ttl = tonumber(ARGV[3])
local refused = {}
for i = 4, #ARGV, 3 do
  local id, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if holds(tag, id, token) then
    rcall('ZREM', KEYS[1], id)
    local h = tkey(tag, id)
    rcall('HSET', h, 'prog', 1, 'tok', '')
    rcall('HDEL', h, 'err', 'tb')
    if result ~= '' then rcall('HSET', h, 'res', result) end
    end_task(tag, id, 'succeeded', now, key_ttl)
  else
    table.insert(refused, id)
    table.insert(refused, token)
  end
end
return refused

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
local ended_per_pool = {} -- the count table is updated once per pool, not once per task
for i = 4, #ARGV, 3 do
  local id, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local h = tkey(tag, id)
  local f = rcall('HMGET', h, 'status', 'tok', 'pool', 'key', 'hc', 'err')
  if f[1] == 'running' and f[2] == token then
    rcall('ZREM', KEYS[1], id)
    if f[6] then rcall('HDEL', h, 'err', 'tb') end
    if result ~= '' then rcall('HSET', h, 'res', result) end
    if f[5] or not f[3] then
      -- the general path: DAG children to resolve (or a damaged record)
      rcall('HSET', h, 'prog', 1, 'tok', '')
      end_task(tag, id, 'succeeded', now, key_ttl)
    else
      rcall('HSET', h, 'status', 'succeeded', 'fms', now, 'prog', 1, 'tok', '')
      rcall('ZADD', tag .. ':ended', now, id)
      if f[4] then
        local kk = tag .. ':k:' .. f[4]
        if rcall('GET', kk) == id then rcall('PEXPIRE', kk, key_ttl) end
      end
      ended_per_pool[f[3]] = (ended_per_pool[f[3]] or 0) + 1
    end
  else
    table.insert(refused, id)
    table.insert(refused, token)
  end
end
for pool, n in pairs(ended_per_pool) do
  rcall('HINCRBY', tag .. ':counts', pool .. '/running', -n)
  rcall('HINCRBY', tag .. ':counts', pool .. '/succeeded', n)
end
return refused

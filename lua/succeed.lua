--[[ succeed: records successful attempts (a batch); each releases its lease and resolves its DAG children.
KEYS[1] {p}:leases  zset  (a batch's lease is released with its last task: release in _lib)
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] key_ttl_ms; then 3 per attempt:
        id, token, result ("" = no result)
Returns: flat array id, token of the attempts refused (the token no longer holds the lease).
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local key_ttl = tonumber(ARGV[3])
local now_text = string.format('%d', now) -- converted once, not once per task
local refused, n_refused = {}, 0
local released, n_released = {}, 0 -- tokens of the attempts recorded, for their batches (release)
local ended, n_ended = {}, 0 -- the fast path's ended tasks: one entry of the ended list
local ended_per_pool = {} -- the count table is updated once per pool, not once per task
for i = 4, #ARGV, 3 do
  local id, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local h = tkey(tag, id)
  local f = rcall('HMGET', h, 'status', 'tok', 'slow', 'pool')
  if f[1] == 'running' and f[2] == token then
    n_released = n_released + 1
    released[n_released] = token
    if f[3] or not f[4] then
      -- the general path: a key's window, DAG children, an old error to clear (or a damaged record)
      rcall('HDEL', h, 'err', 'tb', 'prog')
      if result ~= '' then rcall('HSET', h, 'res', result) end
      end_task(tag, id, 'succeeded', now, key_ttl)
    else
      if result ~= '' then
        rcall('HSET', h, 'status', 'succeeded', 'fms', now_text, 'res', result)
      else
        rcall('HSET', h, 'status', 'succeeded', 'fms', now_text)
      end
      n_ended = n_ended + 1
      ended[n_ended] = id
      ended_per_pool[f[4]] = (ended_per_pool[f[4]] or 0) + 1
    end
  else
    refused[n_refused + 1], refused[n_refused + 2] = id, token
    n_refused = n_refused + 2
  end
end
release(tag, released, n_released)
if n_ended > 0 then rcall('RPUSH', tag .. ':ended', now .. ' ' .. table.concat(ended, ' ')) end
for pool, n in pairs(ended_per_pool) do
  rcall('HINCRBY', tag .. ':counts', pool .. '/running', -n)
  rcall('HINCRBY', tag .. ':counts', pool .. '/succeeded', n)
end
return refused

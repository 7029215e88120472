--[[ cancel: a waiting, scheduled, queued, retrying or running task will never run (again).
KEYS[1] {p}:t:<id>  hash  the task
KEYS[2] {p}:leases  zset  (the running task's batch lease is released: release in _lib)
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] key_ttl_ms; ARGV[4] id
Returns: {1, token} when cancelled now (token of the lease it held if it was running, else ""),
         {0, status} when it had already ended.
Errors: "NOT_FOUND <id>". A running task's id is published on {p}:cancel so its worker stops it.
]]
--- @include _lib

local tag, id = ARGV[1], ARGV[4]
local now = now_or_server(ARGV[2])
local f = rcall('HMGET', KEYS[1], 'status', 'pool', 'seq', 'tok')
local status = f[1]
if not status then return redis.error_reply('NOT_FOUND ' .. id) end
if TERMINAL[status] then return { 0, status } end
local token = ''
if status == 'running' then
  token = f[4]
  if tonumber(token) then release(tag, { token }) end -- (a damaged record's may be anything)
  rcall('HSET', KEYS[1], 'tok', '')
  rcall('PUBLISH', tag .. ':cancel', id)
elseif status == 'queued' then -- (one waiting in a bulk submit's list stays there: claims pass it over)
  rcall('ZREM', tag .. ':r:' .. f[2], member(f[3], id))
elseif status == 'scheduled' or status == 'retrying' then
  rcall('ZREM', tag .. ':d:' .. f[2], member(f[3], id))
end -- a waiting task stays in its parents' child lists, where a non-waiting status is ignored
rcall('HSET', KEYS[1], 'err', 'cancelled')
end_task(tag, id, 'cancelled', now, tonumber(ARGV[3]))
return { 1, token }

--[[ fail: records a failed attempt: a retry after its backoff while attempts remain, else dead.
KEYS[1] {p}:leases  zset
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] key_ttl_ms; ARGV[4] id; ARGV[5] token;
ARGV[6] error text; ARGV[7] traceback; ARGV[8] retry delay ms ("" = permanent error: no retry)
Returns: 1 if recorded, 0 if the token no longer holds the lease.
]]
--- @include _lib

local tag, id, token, delay = ARGV[1], ARGV[4], ARGV[5], ARGV[8]
local now = now_or_server(ARGV[2])
if not holds(tag, id, token) then return 0 end
rcall('ZREM', KEYS[1], id)
local h = tkey(tag, id)
rcall('HSET', h, 'err', ARGV[6], 'tb', ARGV[7], 'tok', '', 'slow', 1)
rcall('HDEL', h, 'prog')
local f = rcall('HMGET', h, 'att', 'maxr', 'pool', 'seq')
if delay ~= '' and f[3] and (tonumber(f[1]) or 0) <= (tonumber(f[2]) or 0) then
  local at = now + tonumber(delay)
  rcall('HSET', h, 'rms', at)
  if at > now then
    rcall('ZADD', tag .. ':d:' .. f[3], at, member(f[4], id))
    set_status(tag, h, f[3], 'running', 'retrying')
  else
    make_ready(tag, id, now)
  end
else
  end_task(tag, id, 'dead', now, tonumber(ARGV[3]))
end
return 1

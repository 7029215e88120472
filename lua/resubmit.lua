--[[ resubmit: runs a dead task again, with a fresh attempt budget; it holds its idempotency key again.
KEYS[1] {p}:t:<id>  hash
KEYS[2] {p}:dead    zset
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] id
Also leaves {p}:died (the dead letter queue by time of death, see _lib) and, as make_ready does, joins
the pool's queue.
Returns: 1. Errors: "NOT_FOUND <id>", "INVALID_STATE <status>".
]]
--- @include _lib

local tag, id = ARGV[1], ARGV[3]
local now = now_or_server(ARGV[2])
local f = rcall('HMGET', KEYS[1], 'status', 'key')
if not f[1] then return redis.error_reply('NOT_FOUND ' .. id) end
if f[1] ~= 'dead' then return redis.error_reply('INVALID_STATE ' .. f[1]) end
rcall('ZREM', KEYS[2], id)
rcall('ZREM', tag .. ':died', id)
-- slow: its success must clear the error it carries from the attempts before
rcall('HSET', KEYS[1], 'att', 0, 'll', 0, 'fms', 0, 'sms', 0, 'rms', now, 'slow', 1)
rcall('HDEL', KEYS[1], 'prog')
if f[2] then
  local kk = tag .. ':k:' .. f[2]
  local holder = rcall('GET', kk)
  if not holder then
    rcall('SET', kk, id)
  elseif holder == id then
    rcall('PERSIST', kk)
  end
end
make_ready(tag, id, now)
return 1

--[[ fail: records failed attempts (a batch): each is retried after its backoff while attempts remain,
else it goes dead.
KEYS[1] {p}:leases  zset  (a batch's lease is released with its last task: release in _lib)
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] key_ttl_ms; then 5 per attempt:
        id, token, error text, traceback, retry delay ms ("" = permanent error: no retry)
Returns: flat array id, token of the attempts refused (the token no longer holds the lease).
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local key_ttl = tonumber(ARGV[3])
local refused, n_refused = {}, 0
local released = {} -- tokens of the attempts recorded, for their batches (release)
for i = 4, #ARGV, 5 do
  local id, token, delay = ARGV[i], ARGV[i + 1], ARGV[i + 4]
  if holds(tag, id, token) then
    released[#released + 1] = token
    local h = tkey(tag, id)
    rcall('HSET', h, 'err', ARGV[i + 2], 'tb', ARGV[i + 3], 'tok', '', 'slow', 1)
    rcall('HDEL', h, 'prog')
    local f = rcall('HMGET', h, 'att', 'maxr', 'pool', 'seq')
    if delay ~= '' and f[3] and (tonumber(f[1]) or 0) <= (tonumber(f[2]) or 0) then
      local at = now + tonumber(delay)
      rcall('HSET', h, 'rms', at)
      if at > now then
        note_due(tag, f[3], at)
        rcall('ZADD', tag .. ':d:' .. f[3], at, member(f[4], id))
        set_status(tag, h, f[3], 'running', 'retrying')
      else
        make_ready(tag, id, now)
      end
    else
      end_task(tag, id, 'dead', now, key_ttl)
    end
  else
    refused[n_refused + 1], refused[n_refused + 2] = id, token
    n_refused = n_refused + 2
  end
end
release(tag, released)
return refused

--[[ reap: returns tasks whose lease ran out to their queue (attempt not counted); a task that lost its
lease max_lease_losses times goes dead instead (a crash loop), counted apart from ordinary failures.
A lease covers a batch of tasks (open_batch in _lib): those of them still running under it are reaped
(and one whose token was lost or damaged: it cannot be running under another).
KEYS[1] {p}:leases  zset
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] max_lease_losses; ARGV[4] key_ttl_ms;
ARGV[5] limit: a call stops after the lease that brings the tasks it looked at to this many (a lease's
        tasks are reaped together)
Returns: flat array of 3 per reaped task: id, token, 1 if it went dead else 0; then "more" if the call
stopped at its limit while other leases had run out: call again.
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local max_losses, key_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local limit = math.max(1, tonumber(ARGV[5])) -- (each call reaps one lease at least)
local out, looked = {}, 0
local expired = rcall('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit + 1)
for i, b in ipairs(expired) do
  if looked >= limit or i > limit then
    out[#out + 1] = 'more'
    break
  end
  local ids = rcall('LRANGE', tag .. ':lb:' .. b, 0, -1)
  looked = looked + #ids
  for k, id in ipairs(ids) do
    local token = token_text(tonumber(b), k)
    local h = tkey(tag, id)
    local f = rcall('HMGET', h, 'status', 'tok', 'll')
    if f[1] == 'running' and (f[2] == token or not tonumber(f[2])) then
      local losses = (tonumber(f[3]) or 0) + 1 -- (a damaged count must not stop the reaper: it starts again)
      rcall('HSET', h, 'll', losses)
      local dead = losses >= max_losses
      if dead then
        rcall('HSET', h, 'tok', '', 'err',
          'lost its lease ' .. losses .. ' times: the worker running it crashed or stalled each time')
        end_task(tag, id, 'dead', now, key_ttl)
      else
        requeue_unstarted(tag, id, now, key_ttl)
      end
      local n = #out
      out[n + 1], out[n + 2], out[n + 3] = id, token, dead and 1 or 0
    end
  end
  drop_batch(tag, b)
end
return out

--[[ claim: moves up to `max` tasks of a pool to running, each under a lease with a new fencing token.
Due scheduled/retrying tasks of the pool are promoted to the ready queue first.
KEYS[1] {p}:r:<pool>  zset  ready queue
KEYS[2] {p}:d:<pool>  zset  scheduled and retrying tasks
KEYS[3] {p}:leases    zset  lease deadlines
KEYS[4] {p}:token     string fencing token counter
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] pool; ARGV[4] max; ARGV[5] owner;
ARGV[6] lease_ms; ARGV[7] key_ttl_ms (for a damaged record that goes dead)
Returns: flat array of 7 per task: id, token, name, payload, attempt, priority, timeout_ms.
The task hashes are found from the popped members, under the same tag.
]]
--- @include _lib

local tag, pool = ARGV[1], ARGV[3]
local now = now_or_server(ARGV[2])
local max, owner, lease_ms, key_ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])

for _, m in ipairs(rcall('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
  rcall('ZREM', KEYS[2], m)
  local h = tkey(tag, string.sub(m, 13))
  local f = rcall('HMGET', h, 'prio', 'rms', 'status')
  -- a damaged record still moves on, to meet the check below that sends it dead
  rcall('ZADD', KEYS[1], ready_score(tonumber(f[1]) or 0, tonumber(f[2]) or now), m)
  set_status(tag, h, pool, f[3], 'queued')
end

-- A record someone damaged (a field deleted by hand, a bad restore) goes dead with the reason, instead of
-- breaking this script for every task behind it.
local REQUIRED = { 'name', 'payload', 'prio', 'tmo', 'status', 'maxr', 'att', 'seq', 'm', 'pool', 'rms' }

local NUMERIC = { prio = true, tmo = true, maxr = true, att = true, seq = true, rms = true }

local function damaged(f)
  for i, name in ipairs(REQUIRED) do
    if f[i] == false or (NUMERIC[name] and not tonumber(f[i])) then return name end
  end
  return nil
end

local out = {}
local popped = rcall('ZPOPMIN', KEYS[1], max)
local count = #popped / 2
local first_token = count > 0 and rcall('INCRBY', KEYS[4], count) - count or 0
local started = 0 -- queued -> running, counted once for the batch
for i = 1, #popped, 2 do
  local id = string.sub(popped[i], 13)
  local h = tkey(tag, id)
  local f = rcall('HMGET', h, unpack(REQUIRED))
  local missing = damaged(f)
  if not f[5] and not f[1] then
    -- the task is gone (deleted by hand): nothing to run
  elseif missing then
    rcall('HSET', h, 'pool', pool, 'seq', tonumber(f[8]) or 0, 'status', f[5] or 'queued',
      'err', 'damaged task record: field ' .. missing .. ' is missing or invalid')
    end_task(tag, id, 'dead', now, key_ttl)
  else
    local token = first_token + (i + 1) / 2
    local attempt = tonumber(f[7]) + 1
    rcall('HSET', h, 'status', 'running', 'att', attempt, 'tok', token, 'own', owner, 'sms', now, 'prog', 0)
    if f[5] == 'queued' then
      started = started + 1
    else
      set_status(tag, h, pool, f[5], 'running') -- (set_status writes the status again: harmless)
    end
    rcall('ZADD', KEYS[3], now + lease_ms, id)
    table.insert(out, id)
    table.insert(out, token)
    table.insert(out, f[1])
    table.insert(out, f[2])
    table.insert(out, attempt)
    table.insert(out, tonumber(f[3]))
    table.insert(out, tonumber(f[4]))
  end
end
if started > 0 then
  rcall('HINCRBY', tag .. ':counts', pool .. '/queued', -started)
  rcall('HINCRBY', tag .. ':counts', pool .. '/running', started)
end
return out

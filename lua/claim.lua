--[[ claim: moves up to `max` tasks of a pool to running, each with a new fencing token, all under one lease.
Due scheduled/retrying tasks of the pool are promoted to the ready queue first.
KEYS[1] {p}:r:<pool>  zset  ready queue
KEYS[2] {p}:d:<pool>  zset  scheduled and retrying tasks
KEYS[3] {p}:leases    zset  lease deadlines, one per batch (see open_batch in _lib)
KEYS[4] {p}:token     string lease batch counter
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] pool; ARGV[4] max; ARGV[5] lease_ms;
ARGV[6] key_ttl_ms (for a damaged record that goes dead); ARGV[7] the claiming instance's hand id, or "";
ARGV[8] idle_ms, ARGV[9] room: with a hand id, the tasks handed to the instance that it still holds come
first (their message may have been lost; their batch's lease is renewed), and when the claim leaves the
queue empty the instance stands idle for idle_ms (see stand_idle in _lib) with room for `room` tasks (its free
runners) less those this call returns; otherwise it no longer stands idle
The tasks it leases form one batch, under one lease (open_batch in _lib).
Returns: flat array of 4 per task: id, token, attempt, spec (the task's "spec" field, see _lib), then
"more" if the call stopped at its limit of ids passed over before it had `max` tasks: call again.
The task hashes are found from the queue's members, under the same tag. A list member (a bulk submit's
tasks, see _lib) gives as many tasks from the head of its list as are wanted; it is then replaced by
one that starts past them, or leaves the queue if the list is used up.
]]
--- @include _lib

local tag, pool = ARGV[1], ARGV[3]
local now = now_or_server(ARGV[2])
local max, lease_ms, key_ttl = math.min(tonumber(ARGV[4]), BATCH - 1), tonumber(ARGV[5]), tonumber(ARGV[6])

for _, m in ipairs(rcall('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
  rcall('ZREM', KEYS[2], m)
  local h = tkey(tag, string.sub(m, 13))
  local f = rcall('HMGET', h, 'prio', 'rms', 'status')
  -- a damaged record still moves on, to meet the check below that sends it dead
  rcall('ZADD', KEYS[1], ready_score(f[1], tonumber(f[2]) or now), m)
  set_status(tag, h, pool, f[3], 'queued')
end

-- A record someone damaged (a field deleted by hand, a bad restore) goes dead with the reason, instead of
-- breaking this script or a worker for every task behind it. Other fields have safe defaults.
local function damaged(f)
  if not f[1] or not string.find(f[1], '^[^ \n]+ %d+ %-?%d+\n') then return 'spec' end
  if not f[2] then return 'status' end
  if f[3] and not tonumber(f[3]) then return 'att' end
  if not f[4] then return 'pool' end
  return nil
end

-- Sends damaged record `id` (its status was `status`; `missing` says what is wrong) dead with the reason.
local function bury(id, h, status, missing)
  rcall('HSET', h, 'pool', pool, 'status', status or 'queued', 'tok', '',
    'err', 'damaged task record: field ' .. missing .. ' is missing or invalid')
  end_task(tag, id, 'dead', now, key_ttl)
end

if max < 1 then return {} end
-- A reply of many large payloads takes a while to cross the network: the batch stops growing past this
-- many bytes of specs (it always takes at least one task).
local MAX_REPLY_BYTES = 8 * 1024 * 1024
-- The most ids of list members passed over in one call (tasks cancelled while they waited in a list):
-- a call that reaches it ends there, returning "more", so the caller claims again at once.
local MAX_PASSED_OVER = 10000
local LIST_READ = 256 -- ids read from a list at a time (at least) after the first read of a call
local out, n_out = {}, 0
local lease_until = now + lease_ms
local now_text = string.format('%d', now) -- converted once, not once per task
local batch, leased = nil, {} -- this call's batch (drawn with its first task): its task ids, in token order
local tokens, bytes, taken = 0, 0, 0 -- tokens given out, bytes of specs, tasks looked at (up to max)
local passed_over = 0
local hand_id = ARGV[7] or ''
if hand_id ~= '' then -- handed tasks it still holds: the caller keeps those it has seen already
  local noted, renewed = handed_list(tag, pool, hand_id), {}
  for _, entry in ipairs(rcall('LRANGE', noted, 0, -1)) do
    local id, token = string.match(entry, '^(%S+) (%S+)$')
    local f = id and holds(tag, id, token) and rcall('HMGET', tkey(tag, id), 'spec', 'att')
    local missing = f and damaged({ f[1], 'running', f[2], pool })
    if missing then -- (dead now: its batch's lease, renewed through the others, would keep it running)
      bury(id, tkey(tag, id), 'running', missing)
      release(tag, { token })
    elseif f then
      local b = batch_of(token)
      if not renewed[b] then
        renewed[b] = true
        rcall('ZADD', KEYS[3], 'XX', lease_until, b)
      end
      out[n_out + 1], out[n_out + 2], out[n_out + 3], out[n_out + 4] = id, tonumber(token), tonumber(f[2]) or 1, f[1]
      n_out = n_out + 4
      taken = taken + 1
    end
  end
  rcall('DEL', noted)
end
local started = 0 -- queued -> running, counted once for the batch

-- Leases task `id` (fields f: spec, status, att, pool) to the caller, or sends a damaged record dead.
local function take(id, h, f, missing)
  missing = missing or damaged(f)
  if missing then
    bury(id, h, f[2], missing)
    return
  end
  if tokens == 0 then batch = new_batch(tag) end
  tokens = tokens + 1
  leased[tokens] = id
  local attempt = (tonumber(f[3]) or 0) + 1
  rcall('HSET', h, 'status', 'running', 'att', attempt, 'tok', token_text(batch, tokens), 'sms', now_text)
  if f[2] == 'queued' then
    started = started + 1
  else
    set_status(tag, h, pool, f[2], 'running') -- (set_status writes the status again: harmless)
  end
  out[n_out + 1], out[n_out + 2], out[n_out + 3], out[n_out + 4] = id, batch * BATCH + tokens, attempt, f[1]
  n_out = n_out + 4
  bytes = bytes + #f[1]
end

-- Takes from the head of a list member's list (see _lib); returns whether the member is to be removed:
-- its list is used up, or it is replaced by one whose first seq is past what was taken, so that a task
-- taken here and handed back later (its seq is lower) keeps its place ahead of the rest of the list.
local function take_from_list(m)
  local first, last = tonumber(string.sub(m, 1, 12), 16), tonumber(string.sub(m, 14, 25), 16)
  local list = tag .. ':' .. string.sub(m, 26)
  local looked, past = 0, nil
  while taken < max and bytes <= MAX_REPLY_BYTES and passed_over < MAX_PASSED_OVER do
    local want = max - taken -- as many as are wanted; more once cancelled tasks were passed over
    if looked > 0 then want = math.max(want, LIST_READ) end
    local ids = rcall('LRANGE', list, looked, looked + want - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      if taken == max or bytes > MAX_REPLY_BYTES or passed_over == MAX_PASSED_OVER then break end
      looked = looked + 1
      local h = tkey(tag, id)
      local f = rcall('HMGET', h, 'spec', 'status', 'att', 'pool', 'seq')
      local seq, waiting = tonumber(f[5]), f[2] == 'queued' or not f[2]
      if (f[1] or f[2]) and waiting and not seq then -- damaged: its seq is lost
        taken = taken + 1
        take(id, h, f, 'seq')
      elseif (f[1] or f[2]) and waiting and seq >= first and seq <= last then
        taken = taken + 1
        past = seq
        take(id, h, f)
      else -- gone (purged), cancelled while it waited, or a new task under a purged id (queued on its own)
        passed_over = passed_over + 1
      end
    end
  end
  rcall('LTRIM', list, looked, -1)
  if rcall('EXISTS', list) == 0 then return true end
  if not past then return false end
  rcall('ZADD', KEYS[1], rcall('ZSCORE', KEYS[1], m), list_member(past + 1, last, list, tag))
  return true
end

-- The queue's head, a window at a time: ZRANGE, then ZREM of the members used up, rather than ZPOPMIN
-- (no scores to make Lua strings of). By member, not by rank: a damaged record's end may make a DAG child
-- ready in this very queue meanwhile. A list member can be used up without giving a task (every one of
-- its tasks was cancelled): the next window then looks further.
while taken < max and bytes <= MAX_REPLY_BYTES and passed_over < MAX_PASSED_OVER do
  local candidates = rcall('ZRANGE', KEYS[1], 0, max - taken - 1)
  local used_up = {}
  for i = 1, #candidates do
    if taken == max or bytes > MAX_REPLY_BYTES or passed_over == MAX_PASSED_OVER then break end
    local m = candidates[i]
    if string.byte(m, 13) == 47 then -- "/": a list member
      if take_from_list(m) then used_up[#used_up + 1] = m end
    else
      taken = taken + 1
      used_up[#used_up + 1] = m
      local id = string.sub(m, 13)
      local h = tkey(tag, id)
      local f = rcall('HMGET', h, 'spec', 'status', 'att', 'pool')
      if f[1] or f[2] then take(id, h, f) end -- else gone (deleted by hand): nothing to run
    end
  end
  call_in_chunks('ZREM', KEYS[1], used_up)
  if #used_up < #candidates or #candidates == 0 then break end -- the queue is empty, or a window stopped
end
if tokens > 0 then open_batch(tag, batch, leased, tokens, lease_until) end
if started > 0 then
  rcall('HINCRBY', tag .. ':counts', pool .. '/queued', -started)
  rcall('HINCRBY', tag .. ':counts', pool .. '/running', started)
end
if hand_id ~= '' then
  local room = tonumber(ARGV[9]) - n_out / 4
  if taken < max and room > 0 and rcall('ZCARD', KEYS[1]) == 0 then
    stand_idle(tag, pool, hand_id, room, lease_ms, now + tonumber(ARGV[8]))
  else
    leave_idle(tag, pool, hand_id)
  end
  -- and those that stood idle too long ago (they did not claim since: crashed, most likely)
  for _, gone in ipairs(rcall('ZRANGEBYSCORE', tag .. ':idle:' .. pool, '-inf', '(' .. now, 'LIMIT', 0, 10)) do
    forget_idle(tag, pool, gone)
  end
end
if passed_over == MAX_PASSED_OVER and taken < max then out[n_out + 1] = 'more' end
return out

--[[ submit: stores a batch of tasks atomically (all checks first, then all writes).
KEYS[1] {p}:seq      string  submission counter
KEYS[2] {p}:all      zset    every stored task by seq
ARGV[1] tag          the "{prefix}" every key starts with
ARGV[2] now_ms       epoch ms, or "" for the server's clock
ARGV[3] key_ttl_ms   how long an idempotency key outlives its task
ARGV[4] n            number of tasks; then 8 fields per task, in batch order (parents before children):
        id, spec (see _lib), pool, priority, max_retries, key ("" = none), run_at_ms ("" = now),
        parents ("trigger:id" joined by "\n", "" = none)
Returns: a flat array position1, holder1, ... for the tasks an idempotency key matched (position in the
batch, from 1; the id of the task that holds the key). Every other task was stored under its own id.
Errors: "DUPLICATE <id>", "UNKNOWN_PARENT <id>" (nothing is written).
A task without parents takes the fast path: one HSET, and the sorted sets and counts it joins are
written once per batch. A task with parents goes through make_ready/end_task like every later transition.
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local key_ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local FIELDS = 8

local function field(i, j) return ARGV[4 + (i - 1) * FIELDS + j] end

local function split_parents(text)
  local out = {}
  if text == '' then return out end
  for edge in string.gmatch(text, '[^\n]+') do
    local sep = string.find(edge, ':', 1, true)
    table.insert(out, { string.sub(edge, 1, sep - 1), string.sub(edge, sep + 1) })
  end
  return out
end

-- Checks first: nothing is written if any task is refused.
local in_batch = {}
for i = 1, n do
  local id, key, parents = field(i, 1), field(i, 6), field(i, 8)
  local deduplicated = key ~= '' and rcall('EXISTS', tag .. ':k:' .. key) == 1
  if not deduplicated then
    if in_batch[id] or rcall('EXISTS', tkey(tag, id)) == 1 then
      return redis.error_reply('DUPLICATE ' .. id)
    end
    for _, edge in ipairs(split_parents(parents)) do
      if not in_batch[edge[2]] and rcall('EXISTS', tkey(tag, edge[2])) == 0 then
        return redis.error_reply('UNKNOWN_PARENT ' .. edge[2])
      end
    end
  end
  in_batch[id] = true
end

-- Resolves a task with parents: waiting on the open ones, skipped if one already ended the wrong way.
local function link_parents(id, h, parents, actual)
  local pending, skip = 0, false
  for _, edge in ipairs(parents) do
    local trigger, parent = edge[1], actual[edge[2]] or edge[2]
    local parent_status = rcall('HGET', tkey(tag, parent), 'status')
    if TERMINAL[parent_status] then
      if not trigger_met(trigger, parent_status) then skip = true end
    else
      rcall('RPUSH', tag .. ':c:' .. parent, trigger .. ':' .. id)
      rcall('HSET', tkey(tag, parent), 'slow', 1) -- its end must resolve its children
      pending = pending + 1
    end
  end
  if skip then
    end_task(tag, id, 'skipped', now, key_ttl)
  elseif pending > 0 then
    rcall('HSET', h, 'pend', pending)
  else
    make_ready(tag, id, now)
  end
end

local out = {}
local actual = {} -- a task deduplicated by its key stands for the holder: its children follow there
local first_seq = rcall('INCRBY', KEYS[1], n) - n
local all = {} -- seq/id pairs for {p}:all
local ready, delayed, counts = {}, {}, {} -- per pool: score/member pairs; per "<pool>/<status>": n
local now_text = string.format('%d', now) -- converted once, not once per task
for i = 1, n do
  local base = 4 + (i - 1) * FIELDS
  local id, spec, pool, prio, maxr = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  local key, run_at, parents = ARGV[base + 6], ARGV[base + 7], ARGV[base + 8]
  local holder = key ~= '' and rcall('GET', tag .. ':k:' .. key)
  if holder then
    actual[id] = holder
    out[#out + 1] = i
    out[#out + 1] = holder
  else
    local seq = first_seq + i
    local h = tkey(tag, id)
    local ready_ms = run_at ~= '' and tonumber(run_at) or now
    local ready_text = run_at ~= '' and run_at or now_text
    all[#all + 1] = seq
    all[#all + 1] = id
    local status = 'waiting'
    if parents == '' then status = ready_ms > now and 'scheduled' or 'queued' end
    rcall('HSET', h, 'spec', spec, 'pool', pool, 'prio', prio, 'maxr', maxr, 'seq', seq, 'status', status,
      'rms', ready_text, 'cms', now_text)
    if key ~= '' then
      rcall('HSET', h, 'key', key, 'slow', 1)
      rcall('SET', tag .. ':k:' .. key, id)
    end
    if parents == '' then
      local queues = status == 'queued' and ready or delayed
      local q = queues[pool]
      if not q then q = {}; queues[pool] = q end
      q[#q + 1] = status == 'queued' and ready_score(prio, ready_ms) or ready_ms
      q[#q + 1] = member(seq, id)
      counts[pool .. '/' .. status] = (counts[pool .. '/' .. status] or 0) + 1
    else
      rcall('HSET', h, 'parents', parents)
      rcall('HINCRBY', tag .. ':counts', pool .. '/waiting', 1)
      link_parents(id, h, split_parents(parents), actual)
    end
  end
end

call_in_chunks('ZADD', KEYS[2], all)
for pool, pairs_ in pairs(ready) do
  local rkey = tag .. ':r:' .. pool
  if rcall('ZCARD', rkey) == 0 then rcall('PUBLISH', tag .. ':wake', pool) end
  call_in_chunks('ZADD', rkey, pairs_)
end
for pool, pairs_ in pairs(delayed) do
  call_in_chunks('ZADD', tag .. ':d:' .. pool, pairs_)
end
for what, count in pairs(counts) do rcall('HINCRBY', tag .. ':counts', what, count) end
return out

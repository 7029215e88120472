--[[ submit: stores a batch of tasks atomically (all checks first, then all writes).
KEYS[1] {p}:seq      string  submission counter
KEYS[2] {p}:all      zset    every stored task by seq
ARGV[1] tag          the "{prefix}" every key starts with
ARGV[2] now_ms       epoch ms, or "" for the server's clock
ARGV[3] key_ttl_ms   how long an idempotency key outlives its task
ARGV[4] n            number of tasks; then 10 fields per task, in batch order (parents before children):
        id, name, pool, payload, priority, max_retries, timeout_ms, key ("" = none),
        run_at_ms ("" = now), parents ("trigger:id" joined by "\n", "" = none)
Returns: a flat array id1, created1, id2, created2, ... (created 0 when an idempotency key matched).
Errors: "DUPLICATE <id>", "UNKNOWN_PARENT <id>" (nothing is written).
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local key_ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local FIELDS = 10

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
  local id, key = field(i, 1), field(i, 8)
  local deduplicated = key ~= '' and rcall('EXISTS', tag .. ':k:' .. key) == 1
  if not deduplicated then
    if in_batch[id] or rcall('EXISTS', tkey(tag, id)) == 1 then
      return redis.error_reply('DUPLICATE ' .. id)
    end
    for _, edge in ipairs(split_parents(field(i, 10))) do
      if not in_batch[edge[2]] and rcall('EXISTS', tkey(tag, edge[2])) == 0 then
        return redis.error_reply('UNKNOWN_PARENT ' .. edge[2])
      end
    end
  end
  in_batch[id] = true
end

local out = {}
local actual = {} -- a task deduplicated by its key stands for the holder: its children follow there
for i = 1, n do
  local id, name, pool, payload = field(i, 1), field(i, 2), field(i, 3), field(i, 4)
  local key, run_at, parents = field(i, 8), field(i, 9), split_parents(field(i, 10))
  local holder = key ~= '' and rcall('GET', tag .. ':k:' .. key)
  if holder then
    actual[id] = holder
    table.insert(out, holder)
    table.insert(out, 0)
  else
    local seq = rcall('INCR', KEYS[1])
    local h = tkey(tag, id)
    rcall('HSET', h, 'id', id, 'name', name, 'pool', pool, 'payload', payload, 'prio', field(i, 5),
      'maxr', field(i, 6), 'tmo', field(i, 7), 'key', key, 'att', 0, 'll', 0, 'prog', 0, 'cms', now,
      'rms', run_at ~= '' and tonumber(run_at) or now, 'sms', 0, 'fms', 0, 'seq', seq,
      'm', string.format('%012x', seq) .. id, 'parents', field(i, 10), 'pend', 0)
    if key == '' then rcall('HDEL', h, 'key') end
    set_status(tag, h, pool, nil, 'waiting')
    rcall('ZADD', KEYS[2], seq, id)
    rcall('SADD', tag .. ':pools', pool)
    if key ~= '' then rcall('SET', tag .. ':k:' .. key, id) end
    local pending, skip = 0, false
    for _, edge in ipairs(parents) do
      local trigger, parent = edge[1], actual[edge[2]] or edge[2]
      local parent_status = rcall('HGET', tkey(tag, parent), 'status')
      if TERMINAL[parent_status] then
        if not trigger_met(trigger, parent_status) then skip = true end
      else
        rcall('RPUSH', tag .. ':c:' .. parent, trigger .. ':' .. id)
        rcall('HSET', tkey(tag, parent), 'hc', 1) -- has children: its end must resolve them
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
    table.insert(out, id)
    table.insert(out, 1)
  end
end
return out

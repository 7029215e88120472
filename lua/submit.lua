--[[ submit: stores a batch of tasks atomically (all checks first, then all writes).
KEYS[1] {p}:seq      string  submission counter
KEYS[2] {p}:all      zset    every stored task by seq
KEYS[3] {p}:staging  zset    (staged only) staged batches by deadline
KEYS[4] {p}:s:<b>    set     (staged only) the staged batch <b> (see lua/bulk.lua)
ARGV[1] tag          the "{prefix}" every key starts with
ARGV[2] now_ms       epoch ms, or "" for the server's clock
ARGV[3] key_ttl_ms   how long an idempotency key outlives its task
ARGV[4] part         "" to store the tasks for good; else this call is part number `part` (from 1) of a
        staged bulk submit (lua/bulk.lua): the tasks are written but join no queue, listing or count until
        the batch is committed (they are in {p}:all, where the listing passes over the seq ranges of
        staged batches), and are dropped if it is not committed within stage_ms of its last part
        (on the server's clock, whatever ARGV[2] says). Only plain tasks are staged. Every part uses the
        first part's time, so the whole batch shares one creation time. Tasks ready at once wait in one
        list per priority and pool, which the commit puts into the ready queue as a single member.
ARGV[5] stage_ms     (staged only) see ARGV[4]
ARGV[6] n            number of tasks, sent in batch order (parents before children) as runs of tasks that
        share their settings. A run is: kind, count, pool, priority, max_retries, when ("" = now; "+<ms>":
        a delay, from this script's now, so the caller's clock does not matter; "<epoch ms>": that moment),
        then per task: id, spec (see _lib) for kind "p" (plain: no key, no parents), or
        id, spec, key ("" = none), parents ("trigger:id" joined by "\n", "" = none) for kind "f".
Returns: a flat array position1, holder1, ... for the tasks an idempotency key matched (position in the
batch, from 1; the id of the task that holds the key). Every other task was stored under its own id.
Errors: "DUPLICATE <id>", "UNKNOWN_PARENT <id>" (nothing is written); "STAGE_LOST <batch>" for a part
of a batch that was dropped or committed already (a part after the first: one no longer staged).
Hand-off (lua/_hand_off.lua): the queued tasks of a pool in which nothing waits are leased at once to an
instance standing idle with room for them all, and published on its channel.
A single plain task that is ready now takes lua/submit_one.lua instead, the same steps with fewer commands.
A task without parents takes the fast path: one HSET, and the sorted sets and counts it joins are
written once per batch. A task with parents goes through make_ready/end_task like every later transition.
]]
--- @include _lib
--- @include _hand_off

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local key_ttl = tonumber(ARGV[3])
local part, stage_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local start -- (staged) "<now> <first seq>" of the batch, set by its first part
if part then -- a part must not bring back (in part) a batch that was dropped or has been committed
  local ended = rcall('EXISTS', KEYS[4] .. ':end') == 1
  if not ended and part > 1 then start = rcall('GET', KEYS[4] .. ':start') end
  if ended or (part > 1 and not (start and rcall('ZSCORE', KEYS[3], KEYS[4]))) then
    return redis.error_reply('STAGE_LOST ' .. KEYS[4])
  end
  if start then now = tonumber(string.match(start, '^%d+')) end
end

-- The runs, decoded once: task j is ids[j], specs[j], keys[j], parents_of[j], and its run's settings
-- run_of[j], in batch order.
local ids, specs, keys, parents_of, run_of = {}, {}, {}, {}, {}
local RUN_HEADER = 6 -- kind, count, pool, priority, max_retries, when
local at, decoded = 7, 0 -- the next ARGV to read; tasks decoded so far
while decoded < n do
  local run = { kind = ARGV[at], count = tonumber(ARGV[at + 1]), pool = ARGV[at + 2], prio = ARGV[at + 3],
    maxr = ARGV[at + 4], when = ARGV[at + 5] }
  at = at + RUN_HEADER
  local plain = run.kind == 'p'
  if part and not plain then return redis.error_reply('a staged task must be plain (no key, no parents)') end
  for _ = 1, run.count do
    decoded = decoded + 1
    local j = decoded
    ids[j], specs[j], run_of[j] = ARGV[at], ARGV[at + 1], run
    if plain then
      keys[j], parents_of[j] = '', ''
      at = at + 2
    else
      keys[j], parents_of[j] = ARGV[at + 2], ARGV[at + 3]
      at = at + 4
    end
  end
end

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
local hashes = {}
for j = 1, n do hashes[j] = tkey(tag, ids[j]) end
local taken = 0
for j = 1, n, 4000 do taken = taken + rcall('EXISTS', unpack(hashes, j, math.min(j + 3999, n))) end
local in_batch = {}
for j = 1, n do
  local id, key, parents = ids[j], keys[j], parents_of[j]
  local deduplicated = key ~= '' and rcall('EXISTS', tag .. ':k:' .. key) == 1
  if not deduplicated then
    if in_batch[id] or (taken > 0 and rcall('EXISTS', hashes[j]) == 1) then
      return redis.error_reply('DUPLICATE ' .. id)
    end
    if parents ~= '' then
      for _, edge in ipairs(split_parents(parents)) do
        if not in_batch[edge[2]] and rcall('EXISTS', tkey(tag, edge[2])) == 0 then
          return redis.error_reply('UNKNOWN_PARENT ' .. edge[2])
        end
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
if part == 1 then rcall('SET', KEYS[4] .. ':start', string.format('%d %d', now, first_seq + 1)) end
local listed = {} -- (staged) per "q:<priority>:<pool>": the ids of its tasks that are ready at once
local all, n_all = {}, 0 -- seq/id pairs for {p}:all
local queues = {} -- per "<pool>/<status>": score/member pairs for its sorted set, and the count
local now_text = string.format('%d', now) -- converted once, not once per task
local run, queue, score, status, ready_text
for j = 1, n do
  local id, key, parents, h = ids[j], keys[j], parents_of[j], hashes[j]
  if run_of[j] ~= run then -- a run shares everything the fast path needs
    run = run_of[j]
    local ready_ms = now
    if string.byte(run.when, 1) == 43 then -- "+"
      ready_ms = now + tonumber(string.sub(run.when, 2))
    elseif run.when ~= '' then
      ready_ms = tonumber(run.when)
    end
    ready_text = run.when ~= '' and string.format('%d', ready_ms) or now_text
    status = ready_ms > now and 'scheduled' or 'queued'
    score = status == 'queued' and ready_score(run.prio, ready_ms) or ready_ms
    run.short = run.prio == '0' and run.when == ''
    if part and run.when == '' then
      local target = 'q:' .. run.prio .. ':' .. run.pool
      listed[target] = listed[target] or {}
      run.short_list = listed[target]
    end
    local what = run.pool .. '/' .. status
    queue = queues[what]
    if not queue then
      queue = { pool = run.pool, status = status, n = 0, pairs = {}, tasks = {} }
      queues[what] = queue
    end
  end
  local holder = key ~= '' and rcall('GET', tag .. ':k:' .. key)
  if holder then
    actual[id] = holder
    out[#out + 1] = j
    out[#out + 1] = holder
  else
    local seq = first_seq + j
    all[n_all + 1], all[n_all + 2] = seq, id
    n_all = n_all + 2
    local waits = parents ~= ''
    local st = waits and 'waiting' or status
    if run.short then -- priority 0 and ready now: those fields are left at their defaults
      rcall('HSET', h, 'spec', specs[j], 'pool', run.pool, 'maxr', run.maxr, 'seq', seq, 'status', st, 'cms', now_text)
    else
      rcall('HSET', h, 'spec', specs[j], 'pool', run.pool, 'prio', run.prio, 'maxr', run.maxr, 'seq', seq,
        'status', st, 'rms', ready_text, 'cms', now_text)
    end
    if key ~= '' then
      rcall('HSET', h, 'key', key, 'slow', 1)
      rcall('SET', tag .. ':k:' .. key, id)
    end
    if waits then
      rcall('HSET', h, 'parents', parents)
      rcall('HINCRBY', tag .. ':counts', run.pool .. '/waiting', 1)
      link_parents(id, h, split_parents(parents), actual)
    elseif run.short_list then
      local ids_of = run.short_list
      ids_of[#ids_of + 1] = id
    else
      local q = queue.pairs
      q[queue.n + 1], q[queue.n + 2] = score, member(seq, id)
      queue.n = queue.n + 2
      queue.tasks[queue.n / 2] = j
    end
  end
end

if part then
  local batch = KEYS[4]
  -- listed at once: the listing leaves out the seq ranges of batches still staged (and a drop deletes them)
  call_in_chunks('ZADD', KEYS[2], all, n_all)
  rcall('RPUSH', batch .. ':seqs', string.format('%d %d', first_seq + 1, first_seq + n))
  -- what the commit will add, per target: "r:<pool>" and "d:<pool>" (score/member pairs for the queues),
  -- "q:<priority>:<pool>" (the ids of tasks ready at once, see _lib)
  local function stage(target, items, count)
    call_in_chunks('RPUSH', batch .. ':' .. target, items, count)
    rcall('SADD', batch, target)
  end
  for target, ids_of in pairs(listed) do
    call_in_chunks('RPUSH', staged_list(tag, batch, target), ids_of)
    rcall('SADD', batch, target)
  end
  for _, q in pairs(queues) do
    if q.n > 0 then stage((q.status == 'queued' and 'r:' or 'd:') .. q.pool, q.pairs, q.n) end
  end
  rcall('ZADD', KEYS[3], now_or_server('') + stage_ms, batch)
  return out
end
-- Hands the queued tasks of q (one pool's, of this call) to an instance standing idle with room for all
-- of them (lua/_hand_off.lua). Returns whether they were handed off.
local function hand_off(q)
  local count = q.n / 2
  if count >= BATCH or queue_holds_work(tag, q.pool) or work_is_due(tag, q.pool, now) then return false end
  local hand_id, room, lease_ms = idle_taker(tag, q.pool, count, now)
  if not hand_id then return false end
  local order = {} -- queue order: priority, then seq
  for k = 1, count do order[k] = k end
  table.sort(order, function(a, b)
    local sa, sb = q.pairs[2 * a - 1], q.pairs[2 * b - 1]
    if sa ~= sb then return sa < sb end
    return q.pairs[2 * a] < q.pairs[2 * b]
  end)
  local handed_ids, handed_specs = {}, {}
  for k, at in ipairs(order) do
    local j = q.tasks[at]
    handed_ids[k], handed_specs[k] = ids[j], specs[j]
  end
  hand_over(tag, q.pool, now, hand_id, room, lease_ms, handed_ids, handed_specs)
  return true
end

call_in_chunks('ZADD', KEYS[2], all, n_all)
for _, q in pairs(queues) do
  if q.n > 0 and not (q.status == 'queued' and hand_off(q)) then
    if q.status == 'queued' then
      local rkey = tag .. ':r:' .. q.pool
      if rcall('ZCARD', rkey) == 0 then rcall('PUBLISH', tag .. ':wake', q.pool) end
      call_in_chunks('ZADD', rkey, q.pairs, q.n)
    else
      local earliest = q.pairs[1]
      for k = 3, q.n, 2 do earliest = math.min(earliest, q.pairs[k]) end
      note_due(tag, q.pool, earliest)
      call_in_chunks('ZADD', tag .. ':d:' .. q.pool, q.pairs, q.n)
    end
    rcall('HINCRBY', tag .. ':counts', q.pool .. '/' .. q.status, q.n / 2)
  end
end
return out

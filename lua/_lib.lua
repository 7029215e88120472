--[[
Shared helpers, pasted by the script loader (python/skedulr/storage/_scripts.py) in place of the line
`--- @include _lib` at the top of each script. Everything here is `local`.

Key layout (every key shares the `{prefix}` hash tag, so one Cluster slot holds a whole queue):
  {p}:t:<id>      hash    a task (fields below)
  {p}:r:<pool>    zset    ready queue: score = (1000 - priority) * 2^42 + (ready_ms - EPOCH), member = a queue
                          member (one task) or a list member (a bulk submit's tasks), see below
  {p}:d:<pool>    zset    scheduled and retrying tasks: score = ready_ms, member = m
  {p}:leases      zset    leases of running tasks, one per batch (see open_batch): score = its deadline (ms),
                          member = the batch number
  {p}:lb:<batch>  list    the ids of a batch's tasks, in token order
  {p}:lbn         hash    batch number -> how many of its tasks still run under it (no entry for a batch of
                          one: release counts it down from 0)
  {p}:all         zset    every stored task: score = seq, member = id (listing, newest first)
  {p}:ended       list    ended tasks other than dead ones, for the retention sweep, oldest first: one entry
                          per moment, "<finished_ms> <id> <id> ..." (a list push is cheaper than a zset add,
                          and a batch of completions shares one entry). Entries of purged tasks linger
                          until swept; the sweep checks each task's own status and finish time.
  {p}:dead        zset    the dead letter queue: score = seq, member = id
  {p}:died        zset    the same tasks by when they died (ms), for a DLQ retention (the sweep: lua/purge.lua)
  {p}:counts      hash    "<pool>/<status>" -> number of tasks
  {p}:k:<key>     string  idempotency key -> task id (expires key_ttl after the task ends)
  {p}:c:<id>      list    children of a task: "<trigger>:<child id>"
  {p}:seq, {p}:token      counters (submission order, lease batches: see open_batch)
  {p}:layout      string  the version of this layout (LAYOUT in python/skedulr/storage/redis.py), set by the
                          first instance: an instance of a version with another one refuses to start
  {p}:staging     zset    staged bulk submits not yet committed: score = deadline (ms), member = {p}:s:<batch>
  {p}:s:<batch>   set     a staged bulk submit's targets (lua/bulk.lua), each with its list of items:
                          {p}:s:<batch>:<target>, or {p}:q:<batch>:<priority>:<pool> for "q:<priority>:<pool>"
  {p}:s:<batch>:start, :end  strings  "<now_ms> <first seq>" of the batch; how it ended (kept a while)
  {p}:s:<batch>:seqs  list    "<first> <last>" seq range of each part: its tasks are in {p}:all already,
                          and the listing passes over them until the batch is committed
  {p}:q:<batch>:<priority>:<pool>  list  ids of a bulk submit's tasks that were ready at once, in seq order.
                          Once committed, ONE ready-queue member stands for the whole list: a "list member",
                          see below. A claim takes ids from its head and moves the member past them; the
                          member goes when the list is empty.
  {p}:idle:<pool> zset    instances standing ready for tasks handed to them (see stand_idle): score = until
                          when (ms), member = the instance's hand id (16 hex digits, drawn per run)
  {p}:room:<pool> hash    hand id -> "<room> <lease_ms>": how many tasks it takes, and their lease
  {p}:handed:<pool>:<hand id>  list  "<id> <token>" of the tasks handed to it: what its next claim (or its
                          leaving) returns if the message never arrived
  channel {p}:hand:<hand id>  tasks leased to that instance by a submit (lua/_hand_off.lua)
  channel {p}:wake        a pool name, published when its ready queue gets work after being empty, or
                          scheduled work falls due before what was scheduled there (note_due)
  channel {p}:cancel      a task id, published when a running task is cancelled
Task hash fields (the id is the key's suffix; a field left out reads as its default):
  spec    "<name> <timeout_ms> <priority>\n" then the payload: what a worker needs, returned by the claim as
          one string so the hot path reads one field instead of four
  pool maxr seq status cms               always written at submit
  prio rms                               priority and ready time (ms): left out at submit when 0 and cms
  key parents sch                        written when the task has them
  att ll prog sms fms pend (default 0)   attempt, lease losses, progress, started/finished ms, open parents
  tok err tb res                         lease token of the running attempt, last error and traceback, result
  slow    "1" when ending the task needs end_task's general path: it has an idempotency key, DAG
          children, or an earlier attempt's error to clear. succeed.lua's fast path handles the rest.
A queue member is member(seq, id): 12 hex digits of seq (FIFO within a priority), then the id. A list member
is list_member(first, last, list): 12 hex digits of the lowest seq its list may still hold (the batch's
first; past what claims took, once they took some), "/", 12 hex digits of the last seq given out when it
was committed, then the list's key without "{p}:". "/" is outside the id alphabet, so the two cannot be
confused. An id taken from a list is run only if its task is still queued and its seq lies within
first..last: a task cancelled meanwhile, or purged and re-created under the same id, is passed over.
A cancelled task's id stays in its list (and the member in the queue) until a claim passes over it.
]]

local rcall = redis.call
local EPOCH = 1700000000000
local SHIFT = 4398046511104 -- 2^42

local function tkey(tag, id) return tag .. ':t:' .. id end

-- Calls `cmd key items...` (the first n items, default all) in chunks of an even size: Lua's unpack takes
-- at most about 8,000 values.
local function call_in_chunks(cmd, key, items, n)
  n = n or #items
  for i = 1, n, 4000 do
    rcall(cmd, key, unpack(items, i, math.min(i + 3999, n)))
  end
end

local function member(seq, id) return string.format('%012x', tonumber(seq) or 0) .. id end

-- The list holding what a staged bulk submit (lua/bulk.lua) keeps for `target`. A "q:<priority>:<pool>"
-- list outlives the commit (the ready queue refers to it), so it lives apart from the batch's own keys.
local function staged_list(tag, batch, target)
  if string.sub(target, 1, 2) == 'q:' then
    return tag .. ':q:' .. string.sub(batch, #tag + 4) .. string.sub(target, 2)
  end
  return batch .. ':' .. target
end

local function list_member(first, last, list_key, tag)
  return string.format('%012x/%012x', first, last) .. string.sub(list_key, #tag + 2)
end

local function now_or_server(arg)
  if arg and arg ~= '' then return tonumber(arg) end
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ready_score(prio, ready_ms)
  return (1000 - (tonumber(prio) or 0)) * SHIFT + math.max(0, tonumber(ready_ms) - EPOCH)
end

local TERMINAL = { succeeded = true, dead = true, cancelled = true, skipped = true }

local function set_status(tag, h, pool, old, new)
  if old == new then return end
  pool = pool or 'unknown' -- a damaged record must not stop the script that is ending it
  if old then rcall('HINCRBY', tag .. ':counts', pool .. '/' .. old, -1) end
  rcall('HINCRBY', tag .. ':counts', pool .. '/' .. new, 1)
  rcall('HSET', h, 'status', new)
end

-- Wakes the pool's workers when scheduled work falls due before anything already scheduled there: an
-- idle fetcher sleeps until the earliest due time it read (or its poll interval), so an earlier one
-- must wake it, or the task would start late.
local function note_due(tag, pool, due_ms)
  local head = rcall('ZRANGE', tag .. ':d:' .. pool, 0, 0, 'WITHSCORES')
  if #head == 0 or due_ms < tonumber(head[2]) then rcall('PUBLISH', tag .. ':wake', pool) end
end

-- Puts a task whose conditions hold into its pool's queue, as queued or scheduled.
local function make_ready(tag, id, now)
  local h = tkey(tag, id)
  local f = rcall('HMGET', h, 'pool', 'prio', 'rms', 'seq', 'status')
  local pool, ready_ms = f[1], math.max(tonumber(f[3]) or now, now)
  rcall('HSET', h, 'rms', ready_ms)
  if ready_ms > now then
    note_due(tag, pool, ready_ms)
    rcall('ZADD', tag .. ':d:' .. pool, ready_ms, member(f[4], id))
    set_status(tag, h, pool, f[5], 'scheduled')
  else
    local rkey = tag .. ':r:' .. pool
    if rcall('ZCARD', rkey) == 0 then rcall('PUBLISH', tag .. ':wake', pool) end
    rcall('ZADD', rkey, ready_score(f[2], ready_ms), member(f[4], id))
    set_status(tag, h, pool, f[5], 'queued')
  end
end

-- Hand-off: an instance whose claim left its pool's queue empty stands idle, ready to take up to
-- `room` more tasks (its free runners); a submit that then finds the queue empty leases its tasks to it
-- at once and publishes them on the instance's channel, so they start without a claim's round trip
-- (lua/_hand_off.lua). A message can be lost (the subscription dropped, or was half-open): each handed task
-- is also noted in the instance's handed list, which its next claim empties (lua/claim.lua returns what
-- it still holds), and so does its leaving (lua/leave_idle.lua).
local function stand_idle(tag, pool, hand_id, room, lease_ms, until_ms)
  rcall('ZADD', tag .. ':idle:' .. pool, until_ms, hand_id)
  rcall('HSET', tag .. ':room:' .. pool, hand_id, room .. ' ' .. lease_ms)
end

local function leave_idle(tag, pool, hand_id)
  rcall('ZREM', tag .. ':idle:' .. pool, hand_id)
  rcall('HDEL', tag .. ':room:' .. pool, hand_id)
end

local function handed_list(tag, pool, hand_id) return tag .. ':handed:' .. pool .. ':' .. hand_id end

-- An instance that stood idle and is gone (nobody listens on its channel, or it did not claim again in
-- time): what was handed to it and never run comes back through the reaper, as from any dead instance.
local function forget_idle(tag, pool, hand_id)
  leave_idle(tag, pool, hand_id)
  rcall('DEL', handed_list(tag, pool, hand_id))
end

local function trigger_met(trigger, outcome)
  if trigger == 'on_complete' then return true end
  if trigger == 'on_success' then return outcome == 'succeeded' end
  return outcome == 'dead' -- on_failure
end

-- Ends a task (terminal status) and applies what follows: retention, key window, DAG children
-- (ready or skipped, cascading).
local function end_task(tag, id, status, now, key_ttl)
  local stack = { { id, status } }
  while #stack > 0 do
    local item = table.remove(stack)
    local tid, st = item[1], item[2]
    local h = tkey(tag, tid)
    local f = rcall('HMGET', h, 'pool', 'status', 'key', 'seq')
    set_status(tag, h, f[1], f[2], st)
    rcall('HSET', h, 'fms', now)
    if st == 'skipped' then
      rcall('HSET', h, 'err', 'skipped: a DAG condition of this task can no longer be met')
    end
    if st == 'dead' then
      rcall('ZADD', tag .. ':dead', tonumber(f[4]) or 0, tid)
      rcall('ZADD', tag .. ':died', now, tid)
    else
      rcall('RPUSH', tag .. ':ended', now .. ' ' .. tid)
    end
    if f[3] then
      local kk = tag .. ':k:' .. f[3]
      if rcall('GET', kk) == tid then rcall('PEXPIRE', kk, key_ttl) end
    end
    local ck = tag .. ':c:' .. tid
    local kids = rcall('LRANGE', ck, 0, -1)
    rcall('DEL', ck)
    for _, edge in ipairs(kids) do
      local sep = string.find(edge, ':', 1, true)
      local trigger, child = string.sub(edge, 1, sep - 1), string.sub(edge, sep + 1)
      local ch = tkey(tag, child)
      if rcall('HGET', ch, 'status') == 'waiting' then
        if trigger_met(trigger, st) then
          if rcall('HINCRBY', ch, 'pend', -1) <= 0 then make_ready(tag, child, now) end
        else
          -- skipped at once, so a second edge to this child is ignored; the rest on its turn below
          set_status(tag, ch, rcall('HGET', ch, 'pool'), 'waiting', 'skipped')
          table.insert(stack, { child, 'skipped' })
        end
      end
    end
  end
end

-- Returns a running task to its queue without counting the attempt, keeping its place in line. A task
-- whose pool field was lost (a damaged record) cannot go back to a queue: it goes dead with the reason.
local function requeue_unstarted(tag, id, now, key_ttl)
  local h = tkey(tag, id)
  local f = rcall('HMGET', h, 'pool', 'prio', 'rms', 'seq', 'status', 'cms', 'att')
  if not f[1] then
    rcall('HSET', h, 'tok', '', 'err', 'damaged task record: field pool is missing')
    end_task(tag, id, 'dead', now, key_ttl)
    return
  end
  rcall('HSET', h, 'att', math.max(0, (tonumber(f[7]) or 1) - 1), 'sms', 0, 'tok', '')
  rcall('HDEL', h, 'prog')
  local rkey = tag .. ':r:' .. f[1]
  if rcall('ZCARD', rkey) == 0 then rcall('PUBLISH', tag .. ':wake', f[1]) end
  rcall('ZADD', rkey, ready_score(f[2], math.min(tonumber(f[3] or f[6]) or now, now)), member(f[4], id))
  set_status(tag, h, f[1], f[5], 'queued')
end

-- Leases are held by batch: the tasks one claim (or one submit's hand-off) leases to an instance share one
-- lease, renewed and reaped as one; so a job costs the lease zset nothing. Batch b's k-th task (from 1) runs
-- under fencing token b * BATCH + k: every script that has a token knows its batch. A batch is released
-- once none of its tasks runs under it any more (release); one whose worker went quiet runs out and the
-- reaper returns those of its tasks still running under it.
local BATCH = 1048576 -- 2^20: the most tasks in one batch (a token stays below 2^53, exact in Lua)

local function batch_of(token) return string.format('%d', math.floor(tonumber(token) / BATCH)) end

-- A new batch number: task k of the batch (from 1) runs under token_text(b, k). (A number drawn for a
-- batch that stays empty is simply never used.)
local function new_batch(tag) return rcall('INCRBY', tag .. ':token', 1) end -- (the command submit uses)

local function token_text(b, k) return string.format('%d', b * BATCH + k) end

-- Opens batch b (new_batch) for the first n (> 0) of `ids`, in token order, leased until `deadline`. A
-- batch of one has no count entry: release's count from 0 reaches -1 all the same (a write less on the
-- path from submit to start).
local function open_batch(tag, b, ids, n, deadline)
  call_in_chunks('RPUSH', tag .. ':lb:' .. b, ids, n)
  if n > 1 then rcall('HSET', tag .. ':lbn', b, n) end
  rcall('ZADD', tag .. ':leases', deadline, b)
end

local function drop_batch(tag, b)
  rcall('ZREM', tag .. ':leases', b)
  rcall('DEL', tag .. ':lb:' .. b)
  rcall('HDEL', tag .. ':lbn', b)
end

-- The tasks running under these tokens stopped running (ended, retrying, handed back, cancelled): a batch
-- none of whose tasks runs any more is released.
local function release(tag, tokens, n)
  local per_batch = {} -- by batch number: written out once per batch, not once per task
  for i = 1, n or #tokens do
    local b = math.floor(tonumber(tokens[i]) / BATCH)
    per_batch[b] = (per_batch[b] or 0) + 1
  end
  for b, count in pairs(per_batch) do
    local name = string.format('%d', b)
    if rcall('HINCRBY', tag .. ':lbn', name, -count) <= 0 then drop_batch(tag, name) end
  end
end

-- Whether `token` holds the lease of running task `id`.
local function holds(tag, id, token)
  local f = rcall('HMGET', tkey(tag, id), 'status', 'tok')
  return f[1] == 'running' and f[2] == token
end

--[[ bulk: ends a staged bulk submit. A large submit_many sends its tasks in parts (lua/submit.lua with
a part number), each a script call that Redis runs while the client encodes the next, so neither waits
for the other; the tasks stay invisible until this script's "commit" makes the whole batch visible in
one step. A batch that is not committed (the client failed or died half-way) is dropped: by the client
at once, or by any instance's retention sweep once the batch's deadline has passed.
KEYS[1] {p}:staging  zset   staged batches by deadline (ms, server clock), member = the batch's key
KEYS[2] {p}:all      zset   every stored task by seq
KEYS[3] {p}:seq      string submission counter (commit: the last seq a list member can hold)
ARGV[1] tag; ARGV[2] "commit", "drop" or "drop_expired"; ARGV[3] the batch's key {p}:s:<batch> (commit,
drop); ARGV[4] how long (ms) a batch's end is remembered
A batch is the set {p}:s:<batch> of its targets, and one list per target (staged_list in _lib):
"r:<pool>" and "d:<pool>" hold score/member pairs for the pool's ready and delayed queues,
"q:<priority>:<pool>" the ids of tasks ready at once, which the commit puts into the ready queue as one
list member (see _lib): committing costs Redis the same for 10 or 100,000 of them. The tasks are in
{p}:all from their part on; {p}:s:<batch>:seqs lists the seq range of each part ("<first> <last>"),
which the listing leaves out while the batch is staged, and a drop deletes. Its end is remembered in
{p}:s:<batch>:end ("committed" or "dropped"): a part still on its way cannot bring a batch back, and a
client whose commit call failed can learn that it happened.
Returns: commit: 1; drop: the number of tasks deleted, or -1 when the batch was committed already;
drop_expired: the number of batches dropped (at most 10: call again while that many were).
Errors: "STAGE_LOST <batch>" on commit when the batch is no longer staged (dropped after its deadline):
nothing of it is stored.
]]
--- @include _lib

local tag, mode = ARGV[1], ARGV[2]

local function commit(batch, remember_ms)
  if rcall('ZREM', KEYS[1], batch) == 0 then return redis.error_reply('STAGE_LOST ' .. batch) end
  local start_ms, first = string.match(rcall('GET', batch .. ':start') or '', '^(%d+) (%d+)$')
  start_ms, first = tonumber(start_ms) or now_or_server(''), tonumber(first) or 0
  local last = tonumber(rcall('GET', KEYS[3])) or 0
  for _, target in ipairs(rcall('SMEMBERS', batch)) do
    local list = staged_list(tag, batch, target)
    local prio, listed_pool = string.match(target, '^q:(%-?%d+):(.+)$')
    if prio then -- the list stays: one member of the ready queue stands for it
      local zkey = tag .. ':r:' .. listed_pool
      if rcall('ZCARD', zkey) == 0 then rcall('PUBLISH', tag .. ':wake', listed_pool) end
      rcall('ZADD', zkey, ready_score(prio, start_ms), list_member(first, last, list, tag))
      rcall('HINCRBY', tag .. ':counts', listed_pool .. '/queued', rcall('LLEN', list))
    else
      local items = rcall('LRANGE', list, 0, -1)
      rcall('DEL', list)
      local kind, pool = string.sub(target, 1, 1), string.sub(target, 3)
      local zkey = tag .. ':' .. target
      if kind == 'r' and rcall('ZCARD', zkey) == 0 then rcall('PUBLISH', tag .. ':wake', pool) end
      if kind == 'd' then
        local earliest = tonumber(items[1])
        for k = 3, #items, 2 do earliest = math.min(earliest, tonumber(items[k])) end
        note_due(tag, pool, earliest)
      end
      call_in_chunks('ZADD', zkey, items)
      local status = kind == 'r' and 'queued' or 'scheduled'
      rcall('HINCRBY', tag .. ':counts', pool .. '/' .. status, #items / 2)
    end
  end
  rcall('DEL', batch, batch .. ':start', batch .. ':seqs')
  rcall('SET', batch .. ':end', 'committed', 'PX', remember_ms)
  return 1
end

local function drop(batch, remember_ms)
  if rcall('GET', batch .. ':end') == 'committed' then return -1 end
  rcall('ZREM', KEYS[1], batch)
  rcall('SET', batch .. ':end', 'dropped', 'PX', remember_ms)
  local deleted = 0
  for _, range in ipairs(rcall('LRANGE', batch .. ':seqs', 0, -1)) do
    local first, last = string.match(range, '^(%d+) (%d+)$')
    for _, id in ipairs(rcall('ZRANGEBYSCORE', KEYS[2], first, last)) do
      rcall('DEL', tkey(tag, id))
      deleted = deleted + 1
    end
    rcall('ZREMRANGEBYSCORE', KEYS[2], first, last)
  end
  for _, target in ipairs(rcall('SMEMBERS', batch)) do rcall('DEL', staged_list(tag, batch, target)) end
  rcall('DEL', batch, batch .. ':start', batch .. ':seqs')
  return deleted
end

local remember_ms = tonumber(ARGV[4])
if mode == 'commit' then return commit(ARGV[3], remember_ms) end
if mode == 'drop' then return drop(ARGV[3], remember_ms) end
local dropped = 0
for _, batch in ipairs(rcall('ZRANGEBYSCORE', KEYS[1], '-inf', now_or_server(''), 'LIMIT', 0, 10)) do
  drop(batch, remember_ms)
  dropped = dropped + 1
end
return dropped

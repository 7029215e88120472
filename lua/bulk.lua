--[[ bulk: ends a staged bulk submit. A large submit_many sends its tasks in parts (lua/submit.lua with
stage_ms), each a script call that Redis runs while the client encodes the next part, so neither waits
for the other; the tasks stay invisible until this script's "commit" makes the whole batch visible in
one step. A batch that is not committed (the client failed or died half-way) is dropped: by the client
at once, or by any instance's retention sweep once the batch's deadline has passed.
KEYS[1] {p}:staging  zset   staged batches by deadline (ms), member = the batch's hash key
KEYS[2] {p}:all      zset   every stored task by seq
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] "commit" or "drop" or "drop_expired";
ARGV[4] the batch's hash key {p}:s:<batch> (commit, drop)
A batch is the hash {p}:s:<batch> (target -> number of items staged for it) and one list per target,
{p}:s:<batch>:<target>: "all" holds seq/id pairs for {p}:all, "r:<pool>" and "d:<pool>" score/member
pairs for the pool's ready and delayed queues.
Returns: commit: 1; drop: the number of tasks deleted; drop_expired: the number of batches dropped.
Errors: "STAGE_LOST <batch>" on commit when the batch is gone (dropped after its deadline): nothing of it
is stored.
]]
--- @include _lib

local tag, mode = ARGV[1], ARGV[3]

local function targets(batch)
  return rcall('HGETALL', batch) -- flat target, count pairs
end

local function commit(batch)
  if rcall('ZREM', KEYS[1], batch) == 0 then return redis.error_reply('STAGE_LOST ' .. batch) end
  local t = targets(batch)
  for i = 1, #t, 2 do
    local target, list = t[i], batch .. ':' .. t[i]
    local items = rcall('LRANGE', list, 0, -1)
    rcall('DEL', list)
    if target == 'all' then
      call_in_chunks('ZADD', KEYS[2], items)
    else
      local kind, pool = string.sub(target, 1, 1), string.sub(target, 3)
      local zkey = tag .. ':' .. target
      if kind == 'r' and rcall('ZCARD', zkey) == 0 then rcall('PUBLISH', tag .. ':wake', pool) end
      call_in_chunks('ZADD', zkey, items)
      local status = kind == 'r' and 'queued' or 'scheduled'
      rcall('HINCRBY', tag .. ':counts', pool .. '/' .. status, #items / 2)
    end
  end
  rcall('DEL', batch)
  return 1
end

local function drop(batch)
  rcall('ZREM', KEYS[1], batch)
  local t, deleted = targets(batch), 0
  for i = 1, #t, 2 do
    local list = batch .. ':' .. t[i]
    if t[i] == 'all' then
      local items = rcall('LRANGE', list, 0, -1)
      for j = 2, #items, 2 do
        rcall('DEL', tkey(tag, items[j]))
        deleted = deleted + 1
      end
    end
    rcall('DEL', list)
  end
  rcall('DEL', batch)
  return deleted
end

if mode == 'commit' then return commit(ARGV[4]) end
if mode == 'drop' then return drop(ARGV[4]) end
local now, dropped = now_or_server(ARGV[2]), 0
for _, batch in ipairs(rcall('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 10)) do
  drop(batch)
  dropped = dropped + 1
end
return dropped

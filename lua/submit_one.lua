--[[ submit_one: stores one plain task that is ready now (no idempotency key, no parents, no delay or run
time): what Scheduler.submit sends when nothing else is in flight, the path from a caller to an idle worker.
It stores the task as lua/submit.lua would, and hands it off the same way (lua/_hand_off.lua), with fewer
distinct commands: on a Redis woken from idling each costs several µs the first time. A handed task's hash
is written once, with its running fields.
KEYS[1] {p}:seq  string  submission counter
KEYS[2] {p}:all  zset    every stored task by seq
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] id; ARGV[4] spec (see _lib); ARGV[5] pool;
ARGV[6] priority; ARGV[7] max_retries
Returns: 1 if handed off to an idle instance, else 0 (queued). Error "DUPLICATE <id>" (nothing written).
]]
--- @include _lib
--- @include _hand_off

local tag, id, spec, pool, prio = ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now = now_or_server(ARGV[2])
local h = tkey(tag, id)
if rcall('EXISTS', h) == 1 then return redis.error_reply('DUPLICATE ' .. id) end
local seq = rcall('INCRBY', KEYS[1], 1)
rcall('ZADD', KEYS[2], seq, id)
local now_text = string.format('%d', now)
local fields = { 'spec', spec, 'pool', pool, 'maxr', ARGV[7], 'seq', seq, 'cms', now_text }
if prio ~= '0' then -- (priority 0 and ready now: those fields are left at their defaults)
  fields[11], fields[12], fields[13], fields[14] = 'prio', prio, 'rms', now_text
end
local queue_was_empty = not queue_holds_work(tag, pool)
if queue_was_empty and not work_is_due(tag, pool, now) then
  local hand_id, room, lease_ms = idle_taker(tag, pool, 1, now)
  if hand_id then
    hand_over(tag, pool, now, hand_id, room, lease_ms, { id }, { spec }, fields)
    return 1
  end
end
rcall('HSET', h, 'status', 'queued', unpack(fields))
if queue_was_empty then rcall('PUBLISH', tag .. ':wake', pool) end
rcall('ZADD', tag .. ':r:' .. pool, ready_score(prio, now), member(seq, id))
rcall('HINCRBY', tag .. ':counts', pool .. '/queued', 1)
return 0

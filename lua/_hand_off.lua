--[[
The hand-off, shared by lua/submit.lua and lua/submit_one.lua; pasted after `--- @include _lib` by the
line `--- @include _hand_off`. See stand_idle in _lib for how an instance comes to stand idle.
Queued tasks of a pool in which nothing waits (its ready queue is empty and nothing of it is due) are
leased at once to an instance standing idle with room for them all, as one batch (open_batch in _lib),
and published on its channel {p}:hand:<hand id> as "<pool> <lease_until_ms>\n", then per task
"<id> <token> <bytes of spec>\n<spec>" (and noted in its handed list): they start without a claim's round
trip. No task waiting longer is passed by.
On a Redis woken from idling, each distinct command a script runs costs several µs the first time: the
checks here use ZRANGEBYSCORE throughout (rather than ZCARD as well) for that reason.
]]

-- Whether a task of `pool` is ready and waiting in its queue.
local function queue_holds_work(tag, pool)
  return #rcall('ZRANGEBYSCORE', tag .. ':r:' .. pool, '-inf', '+inf', 'LIMIT', 0, 1) > 0
end

local function work_is_due(tag, pool, now)
  return #rcall('ZRANGEBYSCORE', tag .. ':d:' .. pool, '-inf', now, 'LIMIT', 0, 1) > 0
end

-- An instance standing idle in `pool` with room for `count` tasks: its hand id, room and lease (ms), or
-- nil. Those nobody listens for any more are forgotten on the way (those that stood idle too long ago,
-- without claiming since, are swept by claims).
local function idle_taker(tag, pool, count, now)
  local rooms = tag .. ':room:' .. pool
  for _, hand_id in ipairs(rcall('ZRANGEBYSCORE', tag .. ':idle:' .. pool, now, '+inf', 'LIMIT', 0, 4)) do
    local room, lease_ms = string.match(rcall('HGET', rooms, hand_id) or '', '^(%d+) (%d+)$')
    -- (PUBSUB NUMSUB, not what PUBLISH returns: that counts pattern subscribers too, a monitor for one)
    if not room or rcall('PUBSUB', 'NUMSUB', tag .. ':hand:' .. hand_id)[2] == 0 then
      forget_idle(tag, pool, hand_id) -- gone: nobody listens on its channel
    elseif tonumber(room) >= count then
      return hand_id, tonumber(room), tonumber(lease_ms)
    end
  end
  return nil
end

-- Leases tasks ids[k] (specs[k]: their spec fields), in queue order, to instance hand_id (idle_taker gave
-- its room and lease_ms) and publishes them. Each task's hash gets its running fields, and `fields` (a flat
-- field/value list, or nil) in the same HSET: a task stored by this very call is written once.
local function hand_over(tag, pool, now, hand_id, room, lease_ms, ids, specs, fields)
  local count = #ids
  local batch = new_batch(tag)
  local lease_until = now + lease_ms
  local now_text = string.format('%d', now)
  local message = { pool, ' ', string.format('%d', lease_until), '\n' }
  local noted = {}
  for k = 1, count do
    local token = token_text(batch, k)
    rcall('HSET', tkey(tag, ids[k]), 'status', 'running', 'att', 1, 'tok', token, 'sms', now_text,
      unpack(fields or {}))
    noted[k] = ids[k] .. ' ' .. token
    message[#message + 1] = noted[k] .. ' ' .. #specs[k] .. '\n' .. specs[k]
  end
  open_batch(tag, batch, ids, count, lease_until)
  call_in_chunks('RPUSH', handed_list(tag, pool, hand_id), noted)
  rcall('HINCRBY', tag .. ':counts', pool .. '/running', count)
  rcall('PUBLISH', tag .. ':hand:' .. hand_id, table.concat(message))
  if room == count then
    leave_idle(tag, pool, hand_id)
  else
    rcall('HSET', tag .. ':room:' .. pool, hand_id, (room - count) .. ' ' .. lease_ms)
  end
end

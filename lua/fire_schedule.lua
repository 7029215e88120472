--[[ fire_schedule: fires one tick of a schedule, once across all instances: only the caller that saw
the stored next fire time still in place moves it on (compare and set) and submits the tick's task.
KEYS[1] {p}:schedules      zset  schedule ids by next fire time
KEYS[2] {p}:sch:<id>       hash  the schedule: name pool payload prio maxr tmo skip next last_task ...
KEYS[3] {p}:seq            string
KEYS[4] {p}:all            zset
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] schedule id; ARGV[4] the next fire time the
caller read; ARGV[5] the one after it (computed by the caller from the cron spec or interval);
ARGV[6] id for the new task
Returns: the new task id, "" when the tick was skipped (previous task still live), or false when
another instance fired this tick first.
]]
--- @include _lib

local tag, sid = ARGV[1], ARGV[3]
local now = now_or_server(ARGV[2])
local current = rcall('ZSCORE', KEYS[1], sid)
if not current or tonumber(current) ~= tonumber(ARGV[4]) then return false end
rcall('ZADD', KEYS[1], tonumber(ARGV[5]), sid)
local s = rcall('HMGET', KEYS[2], 'name', 'pool', 'payload', 'prio', 'maxr', 'tmo', 'skip', 'last_task')
rcall('HSET', KEYS[2], 'next', ARGV[5])
if s[7] == '1' and s[8] and s[8] ~= '' then
  local last = rcall('HGET', tkey(tag, s[8]), 'status')
  if last and not TERMINAL[last] then
    rcall('HINCRBY', KEYS[2], 'skipped', 1)
    return ''
  end
end
local id = ARGV[6]
local seq = rcall('INCR', KEYS[3])
local h = tkey(tag, id)
rcall('HSET', h, 'spec', s[1] .. ' ' .. s[6] .. ' ' .. s[4] .. '\n' .. s[3], 'pool', s[2], 'prio', s[4],
  'maxr', s[5], 'seq', seq, 'cms', now, 'rms', now, 'sch', sid)
set_status(tag, h, s[2], nil, 'waiting')
rcall('ZADD', KEYS[4], seq, id)
make_ready(tag, id, now)
rcall('HSET', KEYS[2], 'last_task', id, 'last_fire', now)
rcall('HINCRBY', KEYS[2], 'fired', 1)
return id

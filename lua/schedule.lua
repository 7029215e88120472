--[[ schedule: stores (ARGV[3] = "add") or removes (ARGV[3] = "remove") a recurring schedule.
KEYS[1] {p}:schedules  zset  schedule ids by next fire time
KEYS[2] {p}:sch:<id>   hash  the schedule
ARGV[1] tag; ARGV[2] schedule id; ARGV[3] "add" or "remove"; for "add": ARGV[4] first fire time (ms),
then field/value pairs for the hash (kind every tz name pool payload prio maxr tmo skip)
Returns: 1. Errors: "SCHEDULE_NOT_FOUND <id>" when removing an unknown schedule.
]]

local rcall = redis.call
if ARGV[3] == 'remove' then
  if rcall('ZREM', KEYS[1], ARGV[2]) == 0 then return redis.error_reply('SCHEDULE_NOT_FOUND ' .. ARGV[2]) end
  rcall('DEL', KEYS[2])
  return 1
end
rcall('DEL', KEYS[2])
local fields = { 'HSET', KEYS[2], 'id', ARGV[2], 'next', ARGV[4], 'fired', 0, 'skipped', 0 }
for i = 5, #ARGV do table.insert(fields, ARGV[i]) end
rcall(unpack(fields))
rcall('ZADD', KEYS[1], tonumber(ARGV[4]), ARGV[2])
return 1

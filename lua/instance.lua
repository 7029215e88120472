--[[ instance: an instance announces itself (ARGV[3] = "beat") or leaves (ARGV[3] = "leave"), so
operators can see which workers run, where, with which pools. An instance that stops beating drops out
after ARGV[5] ms.
KEYS[1] {p}:instances   zset  instance ids by last heartbeat (ms)
KEYS[2] {p}:inst:<id>   hash  host, pid, pools ("name:size,..."), running, started_ms, beat_ms
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] "beat" or "leave"; ARGV[4] instance id;
ARGV[5] ttl_ms; then field/value pairs for the hash
Returns: 1; for a beat, the time (ms) it used: the caller learns how far the server's clock is ahead.
]]
--- @include _lib

local now = now_or_server(ARGV[2])
if ARGV[3] == 'leave' then
  rcall('ZREM', KEYS[1], ARGV[4])
  rcall('DEL', KEYS[2])
  return 1
end
local fields = { 'HSET', KEYS[2], 'id', ARGV[4], 'beat_ms', now }
for i = 6, #ARGV do table.insert(fields, ARGV[i]) end
rcall(unpack(fields))
rcall('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
rcall('ZADD', KEYS[1], now, ARGV[4])
rcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[5]))
return now

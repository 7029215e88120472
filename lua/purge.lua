--[[ purge: deletes ended tasks. With ARGV[3] = "sweep", deletes ended (not dead) tasks that finished
before ARGV[4], at most ARGV[5] of them, keeping their idempotency keys for the rest of their window;
otherwise deletes the tasks named in ARGV[4..] and frees their keys.
KEYS[1] {p}:all  KEYS[2] {p}:ended  KEYS[3] {p}:dead
ARGV[1] tag; ARGV[2] now_ms (unused, for symmetry); ARGV[3] "ids" or "sweep"
Returns: the ids deleted. Errors: "NOT_FOUND <id>", "INVALID_STATE <status>" (nothing deleted).
]]
--- @include _lib

local tag = ARGV[1]

local function delete(id, free_key)
  local h = tkey(tag, id)
  local f = rcall('HMGET', h, 'pool', 'status', 'key')
  rcall('HINCRBY', tag .. ':counts', f[1] .. '/' .. f[2], -1)
  if free_key and f[3] then
    local kk = tag .. ':k:' .. f[3]
    if rcall('GET', kk) == id then rcall('DEL', kk) end
  end
  rcall('DEL', h, tag .. ':c:' .. id)
  rcall('ZREM', KEYS[1], id)
  rcall('ZREM', KEYS[2], id)
  rcall('ZREM', KEYS[3], id)
end

local deleted = {}
if ARGV[3] == 'sweep' then
  for _, id in ipairs(rcall('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))) do
    delete(id, false)
    table.insert(deleted, id)
  end
  return deleted
end
for i = 4, #ARGV do
  local status = rcall('HGET', tkey(tag, ARGV[i]), 'status')
  if not status then return redis.error_reply('NOT_FOUND ' .. ARGV[i]) end
  if not TERMINAL[status] then return redis.error_reply('INVALID_STATE ' .. status) end
end
for i = 4, #ARGV do
  delete(ARGV[i], true)
  table.insert(deleted, ARGV[i])
end
return deleted

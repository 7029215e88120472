--[[ purge: deletes ended tasks. With ARGV[3] = "sweep", deletes ended (not dead) tasks that finished
before ARGV[4], taking entries of the ended list until about ARGV[5] ids are looked at, and dead tasks
that died before ARGV[6] ("" = dead tasks stay), up to ARGV[5] of them, keeping their idempotency keys for
the rest of their window; with "ids", deletes the ended tasks named in ARGV[4..] and frees their keys; with
"dead", the same for those of them still dead (others are passed over: gone or resubmitted meanwhile).
KEYS[1] {p}:all  KEYS[2] {p}:ended  KEYS[3] {p}:dead  KEYS[4] {p}:died
ARGV[1] tag; ARGV[2] now_ms (unused, for symmetry); ARGV[3] "ids", "dead" or "sweep"
Returns: "sweep": the number of ids looked at (below ARGV[5]: nothing more is due); "ids" and "dead": the
ids deleted. Errors ("ids" only): "NOT_FOUND <id>", "INVALID_STATE <status>" (nothing deleted).
]]
--- @include _lib

local tag = ARGV[1]

local function delete(id, free_key)
  local h = tkey(tag, id)
  local f = rcall('HMGET', h, 'pool', 'status', 'key')
  rcall('HINCRBY', tag .. ':counts', (f[1] or 'unknown') .. '/' .. (f[2] or 'dead'), -1)
  if free_key and f[3] then
    local kk = tag .. ':k:' .. f[3]
    if rcall('GET', kk) == id then rcall('DEL', kk) end
  end
  rcall('DEL', h, tag .. ':c:' .. id)
  rcall('ZREM', KEYS[1], id)
  rcall('ZREM', KEYS[3], id) -- (an entry of the ended list lingers: the sweep skips what is gone)
  rcall('ZREM', KEYS[4], id)
end

local deleted = {}
if ARGV[3] == 'sweep' then
  local cutoff, batch, looked = tonumber(ARGV[4]), tonumber(ARGV[5]), 0
  while looked < batch do
    local entry = rcall('LINDEX', KEYS[2], 0)
    if not entry then break end
    local at = tonumber(string.match(entry, '^%d+'))
    if at >= cutoff then break end
    rcall('LPOP', KEYS[2])
    for id in string.gmatch(string.sub(entry, #tostring(at) + 2), '[^ ]+') do
      looked = looked + 1
      local f = rcall('HMGET', tkey(tag, id), 'status', 'fms')
      -- still the task that ended then (not purged, nor an id reused since)
      if TERMINAL[f[1]] and f[1] ~= 'dead' and (tonumber(f[2]) or 0) < cutoff then delete(id, false) end
    end
  end
  if ARGV[6] ~= '' then
    local died = rcall('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[6], 'LIMIT', 0, batch)
    for _, id in ipairs(died) do
      rcall('ZREM', KEYS[4], id)
      if rcall('HGET', tkey(tag, id), 'status') == 'dead' then delete(id, false) end
    end
    looked = math.max(looked, #died)
  end
  return looked
end
if ARGV[3] == 'dead' then
  for i = 4, #ARGV do
    if rcall('HGET', tkey(tag, ARGV[i]), 'status') == 'dead' then
      delete(ARGV[i], true)
      table.insert(deleted, ARGV[i])
    end
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

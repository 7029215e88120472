--[[ migrate: moves a prefix from key layout 2 or 3 to 4, when an instance starts. Only the layout the caller
found moves, in one step: two instances starting at once move it once (the second finds layout 4 and does
nothing). Instances of the old layout must be stopped first (README, "Upgrading").
From 2: layout 3 added {p}:died, the dead letter queue by time of death, filled here from the dead tasks.
From 3 (and 2): layout 4 leases running tasks by batch (open_batch in _lib) where the older layouts leased
each task alone, under tokens from a plain counter: each such lease becomes a batch of one, keeping its
deadline, under a new token past every old one, so a write under an old token is refused.
ARGV[1] tag; ARGV[2] the layout the caller found ("2" or "3")
Returns: {running tasks moved, dead tasks indexed}, or -1 when the prefix was no longer of that layout.
]]
--- @include _lib

local tag = ARGV[1]
if rcall('GET', tag .. ':layout') ~= ARGV[2] then return -1 end
local indexed = 0
if ARGV[2] == '2' then
  for _, id in ipairs(rcall('ZRANGE', tag .. ':dead', 0, -1)) do
    local died = tonumber(rcall('HGET', tkey(tag, id), 'fms')) -- (a damaged one is left out)
    if died then
      rcall('ZADD', tag .. ':died', died, id)
      indexed = indexed + 1
    end
  end
end
local leases = tag .. ':leases'
local old = rcall('ZRANGE', leases, 0, -1, 'WITHSCORES')
rcall('DEL', leases)
-- the batch counter starts past the old tokens: batch b's tokens are above b * BATCH
rcall('SET', tag .. ':token', string.format('%d', math.floor(tonumber(rcall('GET', tag .. ':token') or 0) / BATCH)))
local moved = 0
for i = 1, #old, 2 do
  local id, deadline = old[i], old[i + 1]
  local h = tkey(tag, id)
  if rcall('HGET', h, 'status') == 'running' then
    local b = new_batch(tag)
    rcall('HSET', h, 'tok', token_text(b, 1))
    open_batch(tag, b, { id }, 1, deadline)
    moved = moved + 1
  end
end
rcall('SET', tag .. ':layout', '4')
return { moved, indexed }

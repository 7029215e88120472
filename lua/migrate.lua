--[[ migrate: moves a prefix from key layout 2 or 3 to 4, when an instance starts. Only the layout the caller
found moves: two instances starting at once move it once (the second finds layout 4 and does nothing).
Layout 3 added {p}:died, which the caller of a layout 2 prefix has filled already (it is safe to repeat).
Layout 4 leases running tasks by batch (open_batch in _lib) where layout 3 leased each task alone, under
tokens from a plain counter: each such lease becomes a batch of one, keeping its deadline, under a new
token past every old one. Instances of the old layout must be stopped by then: their tasks come back to
the queue when these leases run out, and their writes are refused.
ARGV[1] tag; ARGV[2] the layout the caller found ("2" or "3")
Returns: the number of running tasks moved, or -1 when the prefix was no longer of that layout.
]]
--- @include _lib

local tag = ARGV[1]
if rcall('GET', tag .. ':layout') ~= ARGV[2] then return -1 end
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
return moved

--[[ hand_back: returns running tasks to their queue without counting the attempt (shutdown, a claim
that no longer fits), keeping their place in line.
KEYS[1] {p}:leases  zset  (a batch's lease is released with its last task: release in _lib)
ARGV[1] tag; ARGV[2] now_ms ("" = server clock); ARGV[3] key_ttl_ms (for a damaged record that goes dead);
then 2 per task: id, token
Returns: how many were handed back (the others had lost their lease already).
]]
--- @include _lib

local tag = ARGV[1]
local now = now_or_server(ARGV[2])
local released = {} -- tokens of the tasks handed back, for their batches (release)
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if holds(tag, id, token) then
    released[#released + 1] = token
    requeue_unstarted(tag, id, now, tonumber(ARGV[3]))
  end
end
release(tag, released)
return #released

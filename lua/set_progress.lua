--[[ set_progress: records progress (0..1) of running attempts, for the holders of their leases only.
ARGV[1] tag; then 3 per attempt: id, token, fraction
Returns: how many were recorded.
]]
--- @include _lib

local tag = ARGV[1]
local count = 0
for i = 2, #ARGV, 3 do
  if holds(tag, ARGV[i], ARGV[i + 1]) then
    rcall('HSET', tkey(tag, ARGV[i]), 'prog', ARGV[i + 2])
    count = count + 1
  end
end
return count

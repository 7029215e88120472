--[[ leave_idle: an instance stops standing idle (stand_idle in _lib) in the given pools: it is stopping,
pausing or resizing, and takes no hand-off until its next claim. Empties its handed lists.
ARGV[1] tag; ARGV[2] the instance's hand id; ARGV[3..] pool names
Returns: flat id, token of the tasks handed to it that it still holds: the caller hands back those it has
not seen (their message is still on its way, or was lost).
]]
--- @include _lib

local tag, hand_id = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  leave_idle(tag, ARGV[i], hand_id)
  local noted = handed_list(tag, ARGV[i], hand_id)
  for _, entry in ipairs(rcall('LRANGE', noted, 0, -1)) do
    local id, token = string.match(entry, '^(%S+) (%S+)$')
    if id and holds(tag, id, token) then
      out[#out + 1] = id
      out[#out + 1] = tonumber(token)
    end
  end
  rcall('DEL', noted)
end
return out

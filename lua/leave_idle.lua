--[[ leave_idle: an instance stops standing idle (stand_idle in _lib) in the given pools: it is shutting
down, and a task handed to it from now on would wait out its lease before another instance ran it.
ARGV[1] tag; ARGV[2] the instance's owner id; ARGV[3..] pool names
Returns: 1.
]]
--- @include _lib

for i = 3, #ARGV do leave_idle(ARGV[1], ARGV[i], ARGV[2]) end
return 1

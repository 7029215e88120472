--[[ control: sets a pool's size and/or pause flag for every instance (ARGV[3] = pool, or "*" for the
global pause), and tells them at once through the wake channel (message "!control").
KEYS[1] {p}:controls  hash  "<pool>/size" -> int, "<pool>/paused" -> "1"/"0"
ARGV[1] tag; ARGV[2] unused (for symmetry: now_ms); ARGV[3] pool or "*"; ARGV[4] size ("" = unchanged);
ARGV[5] paused ("1", "0", or "" = unchanged)
Returns: 1.
]]

local rcall = redis.call
local pool = ARGV[3]
if ARGV[4] ~= '' then rcall('HSET', KEYS[1], pool .. '/size', ARGV[4]) end
if ARGV[5] ~= '' then rcall('HSET', KEYS[1], pool .. '/paused', ARGV[5]) end
rcall('PUBLISH', ARGV[1] .. ':wake', '!control')
return 1

--[[
  Deletes a session's keys through its index (never a scan): every slate the index names, the
  slates every session may hold (for sessions written before the index existed), and the
  index itself. Quarantine sets the quarantine flag in the same step; purge deletes the flags
  too.

    Input:
      KEYS[1]        the session's index
      KEYS[2..k]     keys always deleted (the well-known slates, leases, flags)
      KEYS[k+1]      the quarantine flag (only when ARGV[2] > 0)

      ARGV[1]        the session's base key (a slate `name` is `<base>:<name>`)
      ARGV[2]        quarantine for this many ms (0: purge)
      ARGV[3]        the quarantine flag's value

    Output:
      the number of keys deleted
]]
local rcall = redis.call
local quarantine = tonumber(ARGV[2]) > 0
local last = #KEYS
if quarantine then
  last = last - 1
end
local deleted = 0
for _, name in ipairs(rcall('SMEMBERS', KEYS[1])) do
  deleted = deleted + rcall('DEL', ARGV[1] .. ':' .. name)
end
for i = 1, last do
  deleted = deleted + rcall('DEL', KEYS[i])
end
if quarantine then
  rcall('SET', KEYS[#KEYS], ARGV[3], 'PX', ARGV[2])
end
return deleted

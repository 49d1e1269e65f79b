--[[
  Burns a session's identity when its proxy failed: deletes its slates (cookies, login, profile,
  workflows) through its index, and its login lease, so that its next job starts with a fresh jar
  on its new proxy. Only while the profile is the one the caller read: when another job of the
  session did this first (the profile is gone or new), nothing is deleted.

    Input:
      KEYS[1]        the session's index
      KEYS[2]        the profile slate
      KEYS[3..k]     keys always deleted (the well-known slates, the login lease)

      ARGV[1]        the session's base key (a slate `name` is `<base>:<name>`)
      ARGV[2]        the profile's version the caller read

    Output:
      1 when this call burnt the identity, 0 when another one had
]]
local rcall = redis.call
if tostring(rcall('HGET', KEYS[2], 'v') or '0') ~= ARGV[2] then return 0 end
for _, name in ipairs(rcall('SMEMBERS', KEYS[1])) do
  rcall('DEL', ARGV[1] .. ':' .. name)
end
for i = 2, #KEYS do
  rcall('DEL', KEYS[i])
end
rcall('DEL', KEYS[1])
return 1

--[[
  Reserves the next request slot of one host for the whole fleet: a host's next-allowed time
  lives in one key, so workers on any machine keep its pace without talking to each other.

    Input:
      KEYS[1] the host's next-allowed-time key ({prefix}:host:<host>)

      ARGV[1] now, in ms since the epoch (the caller's clock)
      ARGV[2] the host's minimum interval between requests, in ms (0: no pacing)

    Output:
      0       the slot is this caller's: fetch now (the next slot is now + interval)
      ms > 0  too early: try again in this many ms (nothing reserved)
]]
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local nextAllowed = tonumber(redis.call('GET', KEYS[1]) or '0')
if nextAllowed > now then
  return nextAllowed - now
end
if interval > 0 then
  redis.call('SET', KEYS[1], now + interval, 'PX', interval + 60000)
end
return 0

--[[
  Pushes a host's next-allowed time out (after a 429 or a Retry-After), never pulling it in.

    Input:
      KEYS[1] the host's next-allowed-time key

      ARGV[1] the earliest time the host may be asked again, in ms since the epoch
      ARGV[2] now, in ms since the epoch

    Output:
      the host's next-allowed time after the call
]]
local until_ = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then
  redis.call('SET', KEYS[1], until_, 'PX', until_ - tonumber(ARGV[2]) + 60000)
  return until_
end
return current

--[[
  Takes the one half-open probe of a session's breaker, if the breaker is still open: a job that
  read the breaker as open before another job's probe closed it must not probe again.

    Input:
      KEYS[1] the breaker key (holds the open-until time)
      KEYS[2] the probe key

      ARGV[1] the probe's lease, in ms

    Output:
      1    this caller is the probe
      0    another job is probing: wait
      -1   the breaker is closed: go ahead as usual
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then
  return 1
end
return 0

--[[
  Counts one page of a stream's entries between two ids, newest first, without sending them: the
  results stream holds whole bodies, and a count needs only ids.

    Input:
      KEYS[1] the stream

      ARGV[1] the newest id to count: '+', or '(<id>' for the entries below one already counted
      ARGV[2] the oldest id to count
      ARGV[3] at most this many entries

    Output:
      {count, oldestId}  oldestId is the oldest entry counted, '' when none was
]]
local page = redis.call('XREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
local oldest = page[#page]
if oldest == nil then
  return {0, ''}
end
return {#page, oldest[1]}

--[[
  Forgets the receipts of frontier entries whose links are enqueued and whose entries are
  acknowledged: each is marked with the time (the server's), and receipts marked more than the
  grace period ago are deleted. Not at once: a mover that claimed an entry just before another
  acknowledged it (the other was slow, past the claim's idle time) asks about it after, and must
  be given the same answer, not a second admission.

    Input:
      KEYS[1]      the crawl's receipts  ({prefix}:crawls:<name>:receipts)
      KEYS[2]      its forgotten receipts, by when  ({prefix}:crawls:<name>:forgotten)

      ARGV[1]      the grace period, in ms
      ARGV[2..n]   the receipts to forget

    Output:
      how many receipts were deleted
]]
local rcall = redis.call
local time = rcall('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for i = 2, #ARGV do rcall('ZADD', KEYS[2], 'NX', now, ARGV[i]) end
local due = rcall('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, 1000)
if #due > 0 then
  rcall('HDEL', KEYS[1], unpack(due))
  rcall('ZREM', KEYS[2], unpack(due))
end
return #due

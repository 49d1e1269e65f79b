--[[
  Writes one crawl result and marks its idempotency key finished, in one atomic step, so a job
  that is retried, replayed, or picked up again after its worker died never writes twice.

    Input:
      KEYS[1] ledger key      ({prefix}:ledger:<idempotencyKey>)
      KEYS[2] results stream  ({prefix}:results)

      ARGV[1] result, JSON
      ARGV[2] ledger TTL, seconds
      ARGV[3] approximate maximum length of the results stream

    Output:
      {1, entryId}  written; entryId is the new stream entry
      {0, entryId}  the key was already finished: nothing written; entryId is the earlier entry
]]
local earlier = redis.call('GET', KEYS[1])
if earlier then
  return {0, earlier}
end
local entryId = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', ARGV[1])
redis.call('SET', KEYS[1], entryId, 'EX', ARGV[2])
return {1, entryId}

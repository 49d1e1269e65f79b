--[[
  Writes crawl results and marks each one's idempotency key finished, in one atomic step, so a
  job that is retried, replayed, or picked up again after its worker died never writes twice.
  The results of the jobs a worker finishes in one turn of its event loop come in one call; each
  is written, or refused, on its own, in order (a key given twice is written once).

    Input:
      KEYS[1]          results stream  ({prefix}:results)
      KEYS[2..n+1]     each result's ledger key  ({prefix}:ledger:<idempotencyKey>)

      ARGV[1]          ledger TTL, seconds
      ARGV[2]          approximate maximum length of the results stream
      ARGV[3..n+2]     each result, JSON

    Output:
      {w1, id1, ..., wn, idn}, for each result in order:
        1, entryId    written; entryId is the new stream entry
        0, entryId    the key was already finished: nothing written; entryId is the earlier entry
]]
local rcall = redis.call
local stream = KEYS[1]
local ttl = ARGV[1]
local maxLen = ARGV[2]
local answer = {}
for i = 2, #KEYS do
  local ledger = KEYS[i]
  local earlier = rcall('GET', ledger)
  if earlier then
    answer[#answer + 1] = 0
    answer[#answer + 1] = earlier
  else
    local entryId = rcall('XADD', stream, 'MAXLEN', '~', maxLen, '*', 'r', ARGV[i + 1])
    rcall('SET', ledger, entryId, 'EX', ttl)
    answer[#answer + 1] = 1
    answer[#answer + 1] = entryId
  end
end
return answer

--[[
  Writes crawl results to the outbox and marks each one's idempotency key finished, in one atomic
  step, so a job that is retried, replayed, or picked up again after its worker died never writes
  twice. The results of the jobs a worker finishes in one turn of its event loop come in one
  call; each is written, or refused, on its own, in order (a key given twice is written once).
  Nothing is trimmed here: the outbox gives up an entry only when every sink has acknowledged it
  (trim-outbox.lua), and workers hold back while it is full.

    Input:
      KEYS[1]          results outbox stream  ({prefix}:results)
      KEYS[2]          the outbox's byte count  ({prefix}:results:bytes)
      KEYS[3]          each entry's size, under the entry's id  ({prefix}:results:sizes)
      KEYS[4]          the results written in this 10 s  ({prefix}:results:rate:<10 s since the epoch>)
      KEYS[5..n+4]     each result's ledger key  ({prefix}:ledger:<idempotencyKey>)

      ARGV[1]          ledger TTL, seconds
      ARGV[2..n+1]     each result, JSON

    Output:
      {w1, id1, ..., wn, idn, entries, bytes}, for each result in order:
        1, entryId    written; entryId is the new stream entry
        0, entryId    the key was already finished: nothing written; entryId is the earlier entry
      then the outbox's entries and bytes after the call.
]]
local rcall = redis.call
local stream = KEYS[1]
local ttl = ARGV[1]
local answer = {}
local added = 0
local count = 0
for i = 5, #KEYS do
  local ledger = KEYS[i]
  local earlier = rcall('GET', ledger)
  if earlier then
    answer[#answer + 1] = 0
    answer[#answer + 1] = earlier
  else
    local json = ARGV[i - 3]
    local entryId = rcall('XADD', stream, '*', 'r', json)
    -- Its size, beside it: trimming counts what it gives up without reading the results.
    rcall('XADD', KEYS[3], entryId, 'n', #json)
    rcall('SET', ledger, entryId, 'EX', ttl)
    added = added + #json
    count = count + 1
    answer[#answer + 1] = 1
    answer[#answer + 1] = entryId
  end
end
-- The pace of writing, kept apart from the outbox, which sinks empty (status's last minute).
if count > 0 then
  rcall('INCRBY', KEYS[4], count)
  rcall('EXPIRE', KEYS[4], 180)
end
local bytes
if added > 0 then
  bytes = rcall('INCRBY', KEYS[2], added)
else
  bytes = tonumber(rcall('GET', KEYS[2]) or '0')
end
answer[#answer + 1] = rcall('XLEN', stream)
answer[#answer + 1] = bytes
return answer

--[[
  Admits a page's links to its named crawl on a fleet of more than one shard, where the page's
  result write (on its shard) cannot reach the crawl's seen set (on the fleet tag): each key once
  per crawl, no more than the crawl's page limit, none for a cancelled crawl. The answer is kept
  as a receipt under the frontier entry that asked, so a mover that asks again (the first died
  before enqueueing them, and another claimed the entry) is given the same links again. A receipt
  stays until its entry is enqueued and acknowledged, however long that takes (the next mover to
  claim the entry gets it), and then for a grace period (forget-receipts.lua): a mover that claimed
  the entry before the first acknowledged it still finds it. Each entry is counted once
  (`admissions`): a crawl's pages whose links are still on their way are its stored pages' entries
  (each shard's `forwarded`) less these.

    Input:
      KEYS[1]      the crawl's hash  ({prefix}:crawls:<name>)
      KEYS[2]      its seen set  ({prefix}:crawls:<name>:seen)
      KEYS[3]      its receipts  ({prefix}:crawls:<name>:receipts)

      ARGV[1]      the receipt: the frontier entry that asks (<shard>:<entry id>)
      ARGV[2]      the crawl's page limit (0: none)
      ARGV[3..n]   the links' idempotency keys

    Output:
      the admitted links' places among ARGV[3..n], from 1, comma-separated ("" for none)
]]
local rcall = redis.call
local receipt = rcall('HGET', KEYS[3], ARGV[1])
if receipt then return receipt end
local admitted = {}
if rcall('HGET', KEYS[1], 'state') ~= 'cancelled' then
  local max = tonumber(ARGV[2])
  local discovered = tonumber(rcall('HGET', KEYS[1], 'discovered') or '0')
  for i = 3, #ARGV do
    if max > 0 and discovered >= max then break end
    if rcall('SADD', KEYS[2], ARGV[i]) == 1 then
      discovered = discovered + 1
      admitted[#admitted + 1] = i - 2
    end
  end
  if #admitted > 0 then rcall('HINCRBY', KEYS[1], 'discovered', #admitted) end
end
rcall('HINCRBY', KEYS[1], 'admissions', 1)
local answer = table.concat(admitted, ',')
rcall('HSET', KEYS[3], ARGV[1], answer)
return answer

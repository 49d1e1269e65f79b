--[[
  Starts a named crawl, or extends one: stores its definition the first time (the first caller's
  stands), then admits its seeds to its seen set and counts the new ones as discovered. A caller
  that gives a scope other than the stored one, or extends a cancelled crawl, changes nothing.

    Input:
      KEYS[1]      every crawl, by start time  ({prefix}:crawls)
      KEYS[2]      the crawl's hash  ({prefix}:crawls:<name>): definition, scope, state, counts
      KEYS[3]      the crawl's seen set  ({prefix}:crawls:<name>:seen)

      ARGV[1]      the crawl's name
      ARGV[2]      its definition, JSON
      ARGV[3]      its scope, JSON (follow, globs, limits)
      ARGV[4]      "1" when an existing crawl's scope must be this one, "0" to take the stored one
      ARGV[5]      now, ms since the epoch
      ARGV[6..n]   the seeds' idempotency keys

    Output:
      {status, definition, newSeeds}
        status  1 started, 0 extended, -1 the stored scope differs, -2 the crawl was cancelled
        definition  the stored definition, JSON
]]
local rcall = redis.call
local crawl = KEYS[2]
local started = rcall('HSETNX', crawl, 'definition', ARGV[2])
if started == 1 then
  rcall('HSET', crawl, 'scope', ARGV[3], 'state', 'running', 'discovered', 0, 'stored', 0, 'dead', 0)
  rcall('ZADD', KEYS[1], ARGV[5], ARGV[1])
else
  if ARGV[4] == '1' and rcall('HGET', crawl, 'scope') ~= ARGV[3] then
    return {-1, rcall('HGET', crawl, 'definition'), 0}
  end
  if rcall('HGET', crawl, 'state') == 'cancelled' then
    return {-2, rcall('HGET', crawl, 'definition'), 0}
  end
end
local fresh = 0
for i = 6, #ARGV do
  fresh = fresh + rcall('SADD', KEYS[3], ARGV[i])
end
if fresh > 0 then rcall('HINCRBY', crawl, 'discovered', fresh) end
return {started == 1 and 1 or 0, rcall('HGET', crawl, 'definition'), fresh}

--[[
  Files a dead letter as a failed job of crawl-dlq, replacing an earlier entry of the same id
  whatever its state (the newest failure and history win). A failed job is one Bull Board offers
  Retry for, which the board turns into a replay on crawl. No worker consumes crawl-dlq.

    Input:
      KEYS[1] the entry's job hash
      KEYS[2] the entry's log list
      KEYS[3] failed set
      KEYS[4] wait list
      KEYS[5] delayed set
      KEYS[6] prioritized set
      KEYS[7] completed set
      KEYS[8] events stream

      ARGV[1] entry id
      ARGV[2] job name (what Bull Board lists)
      ARGV[3] data: the dead letter, JSON
      ARGV[4] failed reason (class/reason: message)
      ARGV[5] attempts made
      ARGV[6] now, in ms since the epoch

    Output:
      1 when an earlier entry was replaced, 0 when the entry is new
]]
local rcall = redis.call
local id = ARGV[1]
local replaced = rcall('DEL', KEYS[1], KEYS[2]) > 0
rcall('ZREM', KEYS[3], id)
rcall('LREM', KEYS[4], 0, id)
rcall('ZREM', KEYS[5], id)
rcall('ZREM', KEYS[6], id)
rcall('ZREM', KEYS[7], id)
rcall('HSET', KEYS[1], 'name', ARGV[2], 'data', ARGV[3], 'opts', '{}', 'timestamp', ARGV[6],
  'delay', 0, 'priority', 0, 'processedOn', ARGV[6], 'finishedOn', ARGV[6],
  'failedReason', ARGV[4], 'stacktrace', '[]', 'atm', ARGV[5], 'ats', ARGV[5])
rcall('ZADD', KEYS[3], ARGV[6], id)
rcall('XADD', KEYS[8], 'MAXLEN', '~', 10000, '*', 'event', 'failed', 'jobId', id,
  'failedReason', ARGV[4], 'prev', 'waiting')
if replaced then return 1 end
return 0

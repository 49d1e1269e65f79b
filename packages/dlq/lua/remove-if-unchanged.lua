--[[
  Removes a dead letter only while it is still the failure that was replayed (same failedAt):
  a replayed job that failed again meanwhile has filed a new entry, which must stay. Checking
  and removing in one script leaves no window for such a new entry to be lost.

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
      ARGV[2] the replayed entry's failedAt

    Output:
      1 when removed, 0 when the entry is gone or is another failure now
]]
local rcall = redis.call
local id = ARGV[1]
local data = rcall('HGET', KEYS[1], 'data')
if not data then return 0 end
local ok, letter = pcall(cjson.decode, data)
if not ok or type(letter) ~= 'table' or letter['failedAt'] ~= ARGV[2] then return 0 end
rcall('DEL', KEYS[1], KEYS[2])
rcall('ZREM', KEYS[3], id)
rcall('LREM', KEYS[4], 0, id)
rcall('ZREM', KEYS[5], id)
rcall('ZREM', KEYS[6], id)
rcall('ZREM', KEYS[7], id)
rcall('XADD', KEYS[8], 'MAXLEN', '~', 10000, '*', 'event', 'removed', 'jobId', id, 'prev', 'failed')
return 1

"""The Lua scripts broadcast runs inside Redis, each one atomic step (a crash never leaves
half of it done). Each says what its KEYS and ARGV are."""

# Prepare a chunk for its first send, or read back what was stored for a resend, in one
# atomic step (a crash can never leave the cap counted but the chunk unprepared).
# First time: apply the daily cap (one hash per day, field = resident, value = the ids
# of the alerts counted for them today; a resident already counted for this alert
# stays in), store who receives the chunk and its retry key. The claimed list already
# says who gets it; another list is stored only when the cap took someone out
# ("prepared:all" = the whole claimed list).
# KEYS: chunks hash, claimed list, send-to list, alert hash, cap hash.
# ARGV: chunk, alert id, cap (0 = uncapped), cap ttl seconds, retry key, now.
# Returns {} when the chunk is finished already, else {retry key, recipients...}.
PREPARE = """
local chunk = ARGV[1]
local state = redis.call('HGET', KEYS[1], chunk)
if not state or string.find(state, 'done', 1, true) == 1 or string.find(state, 'failed', 1, true) == 1 then
  return {}
end
if state ~= 'claimed' then
  -- A resend (this worker's retries ran out, or another worker died mid-chunk):
  -- exactly the stored people, with the stored key.
  local list = KEYS[3]
  if state == 'prepared:all' then list = KEYS[2] end
  local out = redis.call('LRANGE', list, 0, -1)
  table.insert(out, 1, redis.call('HGET', KEYS[1], 'key:' .. chunk))
  return out
end
local raw = redis.call('LRANGE', KEYS[2], 0, -1)
local cap = tonumber(ARGV[3])
local out = {ARGV[5]}
if cap == 0 or #raw == 0 then
  for i = 1, #raw do out[i + 1] = raw[i] end
else
  local needle = ',' .. ARGV[2] .. ','
  local updates = {}
  -- one read and one write for the whole chunk (a call per resident costs Redis 3x the CPU)
  local counted = redis.call('HMGET', KEYS[5], unpack(raw))
  for i, uid in ipairs(raw) do
    local seen = counted[i]
    if not seen then
      updates[#updates + 1] = uid
      updates[#updates + 1] = ARGV[2]
      out[#out + 1] = uid
    elseif string.find(',' .. seen .. ',', needle, 1, true) then
      out[#out + 1] = uid
    else
      local _, commas = string.gsub(seen, ',', '')
      if commas + 1 < cap then
        updates[#updates + 1] = uid
        updates[#updates + 1] = seen .. ',' .. ARGV[2]
        out[#out + 1] = uid
      end
    end
  end
  if #updates > 0 then redis.call('HSET', KEYS[5], unpack(updates)) end
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[4]))
end
local allowed = #out - 1
redis.call('DEL', KEYS[3])
if allowed < #raw and allowed > 0 then redis.call('RPUSH', KEYS[3], unpack(out, 2)) end
local prepared = 'prepared'
if allowed == #raw then prepared = 'prepared:all' end
redis.call('HSET', KEYS[1], chunk, prepared, 'key:' .. chunk, ARGV[5], 'first:' .. chunk, ARGV[6])
redis.call('HINCRBY', KEYS[4], 'capped', #raw - allowed)
return out
"""


# Claim the next recipients while sending goes on (no up-front copy of a million ids):
# one SSCAN step over the topic set, keep those in a wanted area, drop anyone already
# claimed for this alert (SSCAN may repeat members if the set changes meanwhile), and
# append them to the open chunk list; a list that reaches CHUNK (or the last one, when
# the scan ends) is marked claimed, and only then may a sender take it. All in one
# atomic step, so a crash never leaves anyone claimed but in no chunk.
# An alert with an English version has two streams of chunks: "0", "1", ... (Japanese)
# and "en:0", "en:1", ... for residents who set up their alerts in English.
# Residents who chose the daily digest are set aside for it (bot.broadcast.digest), not messaged.
# KEYS: topic set, seen set, alert hash, chunks hash, English set, digest set, deferred
# set, then the area sets.
# ARGV: cursor, scan count, chunk size, chunk list prefix, "1" to split by language,
# "1" to set digest residents aside. Returns {cursor, claimed, claimed_en}.
CLAIM = """
local res = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local cursor = res[1]
local batch = res[2]
local fresh = {}
if #batch > 0 then
  -- batch-wide membership tests (SMISMEMBER, Redis 6.2+) rather than a call per resident
  local wanted = {}
  for k = 8, #KEYS do
    local member = redis.call('SMISMEMBER', KEYS[k], unpack(batch))
    for i = 1, #batch do
      if member[i] == 1 then wanted[i] = true end
    end
  end
  local candidates, dup = {}, {}
  for i = 1, #batch do
    if wanted[i] and not dup[batch[i]] then
      dup[batch[i]] = true
      candidates[#candidates + 1] = batch[i]
    end
  end
  if #candidates > 0 then
    local seen = redis.call('SMISMEMBER', KEYS[2], unpack(candidates))
    for i = 1, #candidates do
      if seen[i] == 0 then fresh[#fresh + 1] = candidates[i] end
    end
    if #fresh > 0 then redis.call('SADD', KEYS[2], unpack(fresh)) end
  end
end
if ARGV[6] == '1' and #fresh > 0 and redis.call('SCARD', KEYS[6]) > 0 then
  local digest = redis.call('SMISMEMBER', KEYS[6], unpack(fresh))
  local now, later = {}, {}
  for i = 1, #fresh do
    if digest[i] == 1 then later[#later + 1] = fresh[i] else now[#now + 1] = fresh[i] end
  end
  if #later > 0 then
    redis.call('SADD', KEYS[7], unpack(later))
    redis.call('EXPIRE', KEYS[7], 1209600)
    redis.call('HINCRBY', KEYS[3], 'deferred', #later)
  end
  fresh = now
end
local japanese, english = fresh, {}
if ARGV[5] == '1' and #fresh > 0 then
  japanese = {}
  local en = redis.call('SMISMEMBER', KEYS[5], unpack(fresh))
  for i = 1, #fresh do
    if en[i] == 1 then english[#english + 1] = fresh[i] else japanese[#japanese + 1] = fresh[i] end
  end
end
local size = tonumber(ARGV[3])
local function fill(stream, field, members)
  local claimed = tonumber(redis.call('HGET', KEYS[3], field) or '0')
  local i = 1
  while i <= #members do
    local list = ARGV[4] .. stream .. claimed
    local room = size - redis.call('LLEN', list)
    local last = math.min(#members, i + room - 1)
    redis.call('RPUSH', list, unpack(members, i, last))
    if last - i + 1 == room then
      redis.call('HSET', KEYS[4], stream .. claimed, 'claimed')
      claimed = claimed + 1
    end
    i = last + 1
  end
  if cursor == '0' and redis.call('LLEN', ARGV[4] .. stream .. claimed) > 0 then
    redis.call('HSET', KEYS[4], stream .. claimed, 'claimed')
    claimed = claimed + 1
  end
  redis.call('HSET', KEYS[3], field, claimed)
  return claimed
end
local claimed = fill('', 'claimed', japanese)
local claimed_en = fill('en:', 'claimed_en', english)
redis.call('HINCRBY', KEYS[3], 'recipients', #fresh)
redis.call('HSET', KEYS[3], 'cursor', cursor)
if cursor == '0' then
  redis.call('HSET', KEYS[3], 'scan_done', '1', 'chunks_total', claimed + claimed_en)
end
return {cursor, claimed, claimed_en}
"""


# Extend our lease if it is still ours. KEYS: lease. ARGV: token, ms. Returns 1 or 0.
EXTEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


# SSCAN's COUNT is a hint; batches stay far below Lua's unpack limit (about 8,000 values).
SCAN_COUNT = 1000


# Join a day's digest unless its job has closed the list (then the next day's). The
# digest's title is rendered here, like an alert's card, when staff send: the worker
# that sends it never loads content.
# KEYS: the day's digest hash, its alert list. ARGV: alert id, title (ja), title (en).
# Returns 1 or 0.
REGISTER = """
if redis.call('HEXISTS', KEYS[1], 'state') == 1 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'title', ARGV[2], 'title_en', ARGV[3])
redis.call('EXPIRE', KEYS[2], 1209600)
redis.call('EXPIRE', KEYS[1], 1209600)
return 1
"""


# Start a delivery unless staff cancelled it first; cancel it unless a worker started it.
# The two are one step each, so a cancel and a worker racing for the same alert can never
# both win: either nothing is sent, or the cancel is refused.
# KEYS: the item's hash. ARGV: the new state ('sending' or 'cancelled'), now.
# Returns the state the item had ('' when there was none).
START_OR_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return '' end
if ARGV[1] == 'sending' then
  if state == 'queued' or state == 'sending' then
    redis.call('HSET', KEYS[1], 'state', 'sending')
    if not redis.call('HGET', KEYS[1], 'started_at') then redis.call('HSET', KEYS[1], 'started_at', ARGV[2]) end
  end
elseif state == 'queued' or state == 'draft' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancelled_at', ARGV[2])
end
return state
"""

-- A whole batch's steady state in one call, its slots JSON-encoded in ARGV[1] (one Redis command
-- instead of about ten per cluster: the worker's own CPU, not Redis, bounds the probes per second).
-- Keys travel inside the JSON: this needs a single Redis, not Redis Cluster (DESIGN §4.6).

-- Count one heartbeat slot for a server, once: a slot whose time is at or before the last counted
-- one's is stale. By time, not by number: a slot's number is its time divided by the interval, so
-- after a longer interval every new number is lower than the last one counted.
local function count(key, at, answered)
  local last = tonumber(redis.call('HGET', key, 'slot_at') or '-1')
  if tonumber(at) <= last then return {counted = 0, misses = 0, first_miss = '', answers = 0} end
  redis.call('HSET', key, 'slot_at', at)
  if answered then
    redis.call('HSET', key, 'misses', 0, 'first_miss', '', 'last_answer_at', at)
    return {counted = 1, misses = 0, first_miss = '', answers = redis.call('HINCRBY', key, 'answers', 1)}
  end
  redis.call('HSET', key, 'answers', 0)
  local misses = redis.call('HINCRBY', key, 'misses', 1)
  if misses == 1 then redis.call('HSET', key, 'first_miss', at) end
  return {counted = 1, misses = misses, first_miss = redis.call('HGET', key, 'first_miss'), answers = 0}
end

-- Per cluster: count the slot for both servers; if the primary's count is not stale, bump each
-- streak (HINCRBY its field, reset the opposite one); read both servers' open incidents.
local out = {}
for i, slot in ipairs(cjson.decode(ARGV[1])) do
  local primary = count(slot.primary, slot.at, slot.primary_answered)
  local secondary = count(slot.secondary, slot.at, slot.secondary_answered)
  local streaks = {}
  if primary.counted == 1 then
    for j, bump in ipairs(slot.bumps) do
      streaks[j] = redis.call('HINCRBY', bump.key, bump.field, 1)
      redis.call('HSET', bump.key, bump.reset, 0)
    end
  end
  out[i] = {
    primary = primary,
    secondary = secondary,
    streaks = streaks,
    open_primary = redis.call('HGETALL', slot.primary_open),
    open_secondary = redis.call('HGETALL', slot.secondary_open),
  }
end
return cjson.encode(out)

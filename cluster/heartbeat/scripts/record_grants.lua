-- "Unless fenced for this cluster, record now" (DESIGN §4a rule 2), for each (fence key, grant key)
-- pair in KEYS and (epoch, sent_at) pair in ARGV: `recorded_at` on Redis's clock (what a lease wait
-- counts from), `sent_at` as the grant carries it (evidence). Answers {1, ''} per pair when
-- recorded, {0, reason} when no grant may be sent.
local function record(fence_key, grant_key, epoch, sent_at)
  local fence = redis.call('HGET', fence_key, 'epoch')
  if not fence then return {0, 'no fence loaded'} end
  if tonumber(epoch) < tonumber(fence) then return {0, 'fenced at epoch ' .. fence} end
  if redis.call('HGET', grant_key, 'stopped') == '1' then return {0, 'stopped: no answer in the last slot'} end
  redis.call('HSET', grant_key, 'recorded_at', now, 'sent_at', sent_at, 'epoch', epoch)
  return {1, ''}
end
local out = {}
for i = 1, #KEYS / 2 do
  local answer = record(KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 * i - 1], ARGV[2 * i])
  out[2 * i - 1], out[2 * i] = answer[1], answer[2]
end
return out

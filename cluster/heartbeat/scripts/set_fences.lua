-- Set the fences of KEYS to the epochs ARGV[2…] (ARGV[1] = 'force' or not). A fence put into a
-- Redis that had none (first use, or after a restart) records when, on Redis's clock: grants before
-- that moment are unknown (DESIGN §4a rule 9). Without 'force' an existing fence is kept. Answers
-- the epochs held.
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'epoch', ARGV[i + 1], 'loaded_at', now)
  elseif ARGV[1] == 'force' then
    redis.call('HSET', key, 'epoch', ARGV[i + 1])
  end
  held[i] = redis.call('HGET', key, 'epoch')
end
return held

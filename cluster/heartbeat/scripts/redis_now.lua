-- Redis's own clock (TIME), one clock for every control-plane host: a failover worker on a host
-- whose clock runs ahead of the heartbeat worker's would otherwise end a lease wait early
-- (docs/protocol.md, "Skew is blamed pairwise": control-plane hosts). Prepended to the scripts
-- that stamp times.
local t = redis.call('TIME')
local now = string.format('%d.%06d', t[1], t[2])

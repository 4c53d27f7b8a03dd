"""The randomized fault campaign (`make nemesis SEED=… MINUTES=… CLUSTERS=…`, docs/nemesis.md).

Hand-written fault tests find what their authors thought of; this package searches instead. It runs
a real control plane and real dms-agents, each appliance in a network namespace of its own, draws
faults from a seed (network cuts per direction, delays, process kills and pauses, wiped state, clock
offsets, Redis restarts, operator actions), records what happened, and checks the recorded history
for two serving primaries, epoch anomalies and clusters that do not converge once the faults heal.
"""

"""The heartbeat: one slot of one cluster, followed as data from beat to what it queues (DESIGN §5).

1. **Beat** runs `cluster.tasks.dispatch_heartbeats` every second. `dispatch.due_batches` reloads the
   fences into a Redis that restarted, claims each (interval, slot) of the coming 1.5 s once, and
   cuts its clusters into batches of up to 1,000; the task queues each as `probe_batch` with an ETA
   at the slot's time.
2. **The task** `probe_batch` calls `batch.run_batch`, the one straight line below, handing it a
   `queue` for what the decisions say is to be queued.
3. **Snapshot** (`snapshot.py`): the batch's clusters in one query, read by field name into
   `ClusterView`s (`views.py`: plain values, no Django; a transition loads the rows it writes).
4. **Probe** (`probe.py`, over `high_rate_client.py` and `http11.py`): both appliances of each
   cluster; the primary's heartbeat carries a grant recorded in Redis right before it leaves
   (`state.py`, "unless fenced, record"), the intranet URL is tried at once with a new grant when
   the heartbeat URL does not answer. Out comes a `SlotProbe`.
5. **Count** (`readings.py`, then `state.py`): each answer's clock, link and lease readings, and in
   one Lua call per 100 clusters the slot counted for both servers, the streaks bumped and the open
   incidents read. Out comes a `SlotState` per cluster.
6. **Evaluate** (`evaluate.py`, pure): misses, checks, clocks, the link, the control plane's clock,
   the cluster's state and the failover causes, judged from those values alone. Out come
   **decisions** (`decisions.py`).
7. **Carry out** (`apply.py`): rows written by id and guarded, events through `incidents.py`,
   the failover request on the cluster row; what is to be queued (`QueueFailover`,
   `QueueReconcile`) goes back to the task's `queue`, which sends `run_failover` or
   `reconcile_secondary`.

`last_seen.py` writes the last answers into the database periodically (`flush_last_seen`).
Nothing here imports `cluster.tasks`: the tasks call down into this package, never the other way.
"""

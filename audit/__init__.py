"""The audit log: who did what to which object, and what changed (docs/operator-guide.md).

A leaf app: cluster, alerts and licensing import it to record their operator and admin actions; it
imports none of them (models name their secret fields and toggles through `audit.record.register`).
"""

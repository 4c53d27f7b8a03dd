"""Side effects of saving a cluster, kept out of `Cluster.save()` (the web layer, the admin and the
API all save through the model; the engine writes by conditional UPDATE and triggers none of these).

- A new cluster: both agents are configured once the row is committed, then the initial sync
  follows (docs/design.md, "Cluster created").
- A server's new agent token reaches its peer, which must heartbeat it with the new token's peer
  credential (the agent accepts the old and the new token meanwhile: `--next-token`).
- A change of timing (interval, lease, grant delay, skew) is a command to both agents; until both
  have acknowledged it, `lease_bound_s` holds the longest lease a granter may still be granting, old
  or new, and every lease wait uses it (docs/protocol.md, "Settings changes are commands").

What changed is seen before the save (pre_save: the row still holds the old values); the task is
queued after it (post_save, then once committed). Queued from pre_save, outside a transaction
(the API's saves), `on_commit` runs at once: the task could read the row before the save and find
nothing to do, and the agents never got the new settings.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from .models import Cluster, Server
from .tasks import configure_cluster, push_peer_credentials, push_settings

TIMING_FIELDS = ("heartbeat_interval", "lease_s", "max_grant_delay", "max_clock_skew")


@receiver(pre_save, sender=Cluster)
def bound_the_lease_across_a_timing_change(sender, instance: Cluster, raw=False, **kwargs) -> None:
    if raw or instance.pk is None:
        return
    before = Cluster.objects.filter(pk=instance.pk).first()
    if before is None or all(getattr(before, f) == getattr(instance, f) for f in TIMING_FIELDS):
        return
    instance.lease_bound_s = max(before.longest_lease_s, instance.effective_lease_s)
    instance.settings_changed_at = timezone.now()
    instance.__dict__["_push_settings_after_save"] = True


@receiver(post_save, sender=Cluster)
def push_changed_settings(sender, instance: Cluster, raw=False, **kwargs) -> None:
    if not raw and instance.__dict__.pop("_push_settings_after_save", False):
        transaction.on_commit(partial(push_settings.delay, instance.pk))


@receiver(post_save, sender=Cluster)
def configure_a_new_cluster(sender, instance: Cluster, created: bool, raw=False, **kwargs) -> None:
    if created and not raw:
        transaction.on_commit(lambda: configure_cluster.delay(instance.pk))


@receiver(pre_save, sender=Server)
def note_a_new_agent_token(sender, instance: Server, raw=False, **kwargs) -> None:
    if raw or instance.pk is None:
        return
    before = Server.objects.filter(pk=instance.pk).first()
    if before is None or before.agent_token == instance.agent_token:
        return
    instance.__dict__["_push_peer_credentials_after_save"] = True


@receiver(post_save, sender=Server)
def push_a_new_token_credential(sender, instance: Server, raw=False, **kwargs) -> None:
    if raw or not instance.__dict__.pop("_push_peer_credentials_after_save", False):
        return
    clusters = Cluster.objects.filter(Q(primary_id=instance.pk) | Q(secondary_id=instance.pk)).values_list(
        "id", flat=True
    )
    for cluster_id in clusters:
        transaction.on_commit(partial(push_peer_credentials.delay, cluster_id))

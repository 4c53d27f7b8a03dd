"""The part catalog, and the licenses and optional software modules installed on each appliance."""

from django.db import models


class Source(models.TextChoices):
    INSTALLED = "installed", "Installed"
    COPIED = "copied", "Copied from the primary"


class PartNumber(models.Model):
    """A primary part and the failover part it must be paired with (DESIGN §2); admins may add rows."""

    application = models.CharField(max_length=10, choices=[("dmm", "Digital Media Manager"), ("sns", "Show and Share")])
    edition = models.CharField(max_length=100, help_text="For example: Show and Share – Enterprise.")
    primary_part = models.CharField(max_length=40, unique=True)
    failover_part = models.CharField(max_length=40, unique=True)
    platform = models.CharField(max_length=10, choices=[("ucs", "UCS"), ("mcs", "MCS")], default="ucs")

    class Meta:
        ordering = ["application", "primary_part"]

    def __str__(self) -> str:
        return f"{self.primary_part} ↔ {self.failover_part}"


class License(models.Model):
    server = models.ForeignKey("cluster.Server", on_delete=models.CASCADE, related_name="licenses")
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(default=1)
    expires_at = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.INSTALLED)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["server", "name"]
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="license_once_per_server")]

    def __str__(self) -> str:
        return f"{self.name} on {self.server}"


class SoftwareModule(models.Model):
    server = models.ForeignKey("cluster.Server", on_delete=models.CASCADE, related_name="modules")
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=40)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.INSTALLED)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["server", "name"]
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="module_once_per_server")]

    def __str__(self) -> str:
        return f"{self.name} {self.version} on {self.server}"

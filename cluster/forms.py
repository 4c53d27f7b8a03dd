"""The admin's server form: part numbers offered from the catalog, hardware entered field by field
(the schema of cluster/hardware.py) rather than as a JSON box."""

from django import forms

from licensing.models import PartNumber

from .hardware import hardware_errors
from .models import Server

DISKS_HELP = "One disk per line: its size in GB and its kind, e.g. “300 sas”."


def part_choices(current: str = "") -> list:
    """The catalog's parts grouped by application, primary and failover parts both (after a failover
    the failover appliance is the primary, but each keeps its own part). A stored part missing from
    the catalog stays offered, so the form shows it and the model's check explains the refusal."""
    groups: dict[str, list] = {}
    for entry in PartNumber.objects.order_by("application", "primary_part"):
        options = groups.setdefault(entry.get_application_display(), [])
        options.append((entry.primary_part, f"{entry.primary_part} — primary ({entry.edition})"))
        options.append((entry.failover_part, f"{entry.failover_part} — failover ({entry.edition})"))
    choices = [("", "---------"), *groups.items()]
    known = {value for options in groups.values() for value, _ in options}
    if current and current not in known:
        choices.append((current, f"{current} (not in the part catalog)"))
    return choices


def parse_disks(text: str) -> list[dict]:
    disks = []
    for number, line in enumerate((line.strip() for line in text.splitlines() if line.strip()), start=1):
        size, _, kind = line.partition(" ")
        try:
            size_gb = float(size)
        except ValueError:
            raise forms.ValidationError(f"Disk {number}: “{size}” is not a size in GB. {DISKS_HELP}") from None
        disks.append({"size_gb": int(size_gb) if size_gb.is_integer() else size_gb, "kind": kind.strip()})
    return disks


def format_disks(disks) -> str:
    if not isinstance(disks, list):
        return ""
    return "\n".join(f"{d.get('size_gb', '')} {d.get('kind', '')}" for d in disks if isinstance(d, dict))


class CatalogPartField(forms.ChoiceField):
    """Offers the catalog's parts, but leaves judging a part to the model (Server.clean), whose
    message names the rule rather than "not one of the available choices"."""

    def valid_value(self, value) -> bool:
        return True


class ServerAdminForm(forms.ModelForm):
    part_number = CatalogPartField(help_text="From the part catalog (Licensing › Part numbers).")
    cpu_model = forms.CharField(label="CPU model", max_length=200)
    cpu_count = forms.IntegerField(label="CPU count", min_value=1, max_value=1024)
    memory_gb = forms.FloatField(label="Memory (GB)", min_value=0.001, max_value=1_048_576)
    disks = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text=DISKS_HELP)
    raid_level = forms.CharField(label="RAID level", max_length=40, help_text="For example RAID1.")
    nic_count = forms.IntegerField(label="Network interfaces", min_value=1, max_value=64)

    class Meta:
        model = Server
        fields = [
            "name",
            "application",
            "part_number",
            "platform",
            "heartbeat_url",
            "intranet_url",
            "web_url",
            "agent_token",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["part_number"].choices = part_choices(self.instance.part_number)
        hardware = self.instance.hardware if isinstance(self.instance.hardware, dict) else {}
        for name in ("cpu_model", "cpu_count", "memory_gb", "raid_level", "nic_count"):
            self.initial.setdefault(name, hardware.get(name))
        self.initial.setdefault("disks", format_disks(hardware.get("disks")))

    def clean_disks(self) -> list[dict]:
        return parse_disks(self.cleaned_data["disks"])

    def clean(self):
        cleaned = super().clean()
        names = ("cpu_model", "cpu_count", "memory_gb", "disks", "raid_level", "nic_count")
        if all(name in cleaned for name in names):
            memory = cleaned["memory_gb"]
            hardware = {name: cleaned[name] for name in names}
            hardware["memory_gb"] = int(memory) if memory.is_integer() else memory
            for message in hardware_errors(hardware):
                self.add_error(None, message)
            # Set before the model's clean(), which compares it with the cluster peer's hardware.
            self.instance.hardware = hardware
        if self.instance.pk:
            problem = Server.objects.get(pk=self.instance.pk).token_to_reenter(cleaned)
            if problem:
                self.add_error("agent_token", problem)
        return cleaned

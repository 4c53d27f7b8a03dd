"""The notification rule form: one per channel (SNMP or email), the model's clean() for the rules."""

from __future__ import annotations

import re

from django import forms

from .choices import WEAK_HELP, Channel, EventType, marked_choices
from .models import SECRET_FIELDS, NotificationRule, default_event_types

COMMON_FIELDS = ["name", "enabled", "event_types", "min_severity", "clusters"]
CHANNEL_FIELDS = {
    Channel.EMAIL: ["recipients"],
    Channel.SNMP: [
        "host",
        "port",
        "snmp_version",
        "snmp_mode",
        "community",
        "snmp_user",
        "auth_protocol",
        "auth_key",
        "priv_protocol",
        "priv_key",
    ],
}


class NotificationRuleForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=default_event_types,
        error_messages={"required": "Choose at least one event type."},
    )
    recipients = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "noc@example.com"}),
        required=False,
        help_text="One address per line (or separated by commas).",
    )
    community = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    auth_key = forms.CharField(
        required=False, label="Authentication key", widget=forms.PasswordInput(render_value=False)
    )
    priv_key = forms.CharField(required=False, label="Privacy key", widget=forms.PasswordInput(render_value=False))

    class Meta:
        model = NotificationRule
        fields = COMMON_FIELDS + CHANNEL_FIELDS[Channel.SNMP] + CHANNEL_FIELDS[Channel.EMAIL]
        widgets = {"clusters": forms.CheckboxSelectMultiple}
        labels = {
            "min_severity": "Minimum severity",
            "snmp_version": "SNMP version",
            "snmp_mode": "Send as",
            "snmp_user": "SNMPv3 user",
            "auth_protocol": "Authentication protocol",
            "priv_protocol": "Privacy protocol",
        }
        help_texts = {
            "clusters": "None ticked: every cluster.",
            "host": "Hostname or IP address of the SNMP manager.",
        }

    def __init__(self, *args, channel: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.channel = Channel(channel)
        self.instance.channel = self.channel
        keep = set(COMMON_FIELDS) | set(CHANNEL_FIELDS[self.channel])
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        for name, help_text in WEAK_HELP.items():
            if name in self.fields:
                self.fields[name].choices = marked_choices(name, self.fields[name].choices)
                self.fields[name].help_text = help_text
        if self.instance.pk and self.channel == Channel.EMAIL:
            self.initial["recipients"] = "\n".join(self.instance.recipients)
        for name in SECRET_FIELDS:
            if name in self.fields and self.instance.pk and getattr(self.instance, name):
                self.fields[name].help_text = "A value is stored; leave blank to keep it."
                self.fields[name].widget.attrs["placeholder"] = "•••••••• (unchanged)"

    def clean_recipients(self) -> list[str]:
        text = self.cleaned_data.get("recipients") or ""
        return [address for address in re.split(r"[\s,;]+", text) if address]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk:
            stored = NotificationRule.objects.get(pk=self.instance.pk)
            for name, message in stored.secrets_to_reenter(cleaned).items():
                self.add_error(name, message)
        for name in SECRET_FIELDS:
            if name in self.fields and not cleaned.get(name) and self.instance.pk:
                # Write-only: blank keeps what is stored (the instance still holds the stored value).
                cleaned[name] = NotificationRule.objects.values_list(name, flat=True).get(pk=self.instance.pk)
        return cleaned

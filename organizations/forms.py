"""The staff page's API key form: input shape only; `organizations.services` decides what is allowed."""

from __future__ import annotations

from django import forms

from organizations.services import MAX_KEY_VALIDITY_DAYS

SELF = ""  # the `user` choice meaning "a key for me"


def _days_field(label: str, help_text: str) -> forms.IntegerField:
    between = f"between 1 and {MAX_KEY_VALIDITY_DAYS}"
    return forms.IntegerField(
        label=label, required=False, min_value=1, max_value=MAX_KEY_VALIDITY_DAYS, help_text=help_text,
        error_messages={"invalid": f"Enter a whole number of days {between}, or leave it empty.",
                        "min_value": f"Enter a number of days {between}.",
                        "max_value": f"Enter a number of days {between}."},
    )


class ApiKeyForm(forms.Form):
    label = forms.CharField(label="Label", max_length=100, required=False,
                            help_text="What the key is for, e.g. “deploy pipeline”. Shown in lists, never secret.",
                            error_messages={"max_length": "A label has at most %(limit_value)d characters."})
    user = forms.ChoiceField(label="For", required=False, choices=[(SELF, "Myself")],
                             help_text="The key acts with that member's role.")
    expires_days = _days_field("Expires after (days)", "Empty: the key does not expire; revoke it when done.")
    allowed_cas = forms.MultipleChoiceField(
        label="Allowed CAs", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Issue and renew only from these CAs. None ticked: every CA the role may use.",
        error_messages={"invalid_choice": "Choose CAs from the list; “%(value)s” is not one of them."})
    allowed_profiles = forms.MultipleChoiceField(
        label="Allowed profiles", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Issue only with these profiles. None ticked: every profile.",
        error_messages={"invalid_choice": "Choose profiles from the list; “%(value)s” is not one of them."})
    max_validity_days = _days_field("Longest validity (days)",
                                    "Requests for longer are refused; a request without a validity gets this one. "
                                    "Empty: the profile's own maximum.")

    def __init__(self, *args, holders=(), cas=(), profiles=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if holders:
            self.fields["user"].choices = [(SELF, "Myself")] + [
                (member.user.get_username(),
                 f"{member.user.get_username()} ({member.role}, "
                 f"{member.organization.slug if member.organization_id else 'global'})")
                for member in holders]
            self.fields["user"].error_messages["invalid_choice"] = "Choose a member from the list."
        else:
            del self.fields["user"]
        self.fields["allowed_cas"].choices = [(ca.slug, f"{ca.name} ({ca.organization.slug}, {ca.slug})")
                                              for ca in cas]
        self.fields["allowed_profiles"].choices = [(profile.name, profile.name) for profile in profiles]

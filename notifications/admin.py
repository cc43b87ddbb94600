"""Admin for notifications: channels and subscribers are edited; events and deliveries are read."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from notifications.models import Channel, Delivery, Event, EventKind, Subscriber


class ChannelForm(forms.ModelForm):
    event_kinds = forms.MultipleChoiceField(choices=[c for c in EventKind.choices if c[0] != EventKind.TEST],
                                            required=False,
                                            widget=forms.CheckboxSelectMultiple,
                                            help_text="None ticked: every kind.")

    class Meta:
        model = Channel
        fields = ["name", "kind", "url", "secret", "event_kinds", "enabled"]
        # The URL holds credentials: shown as a password field, kept when left blank.
        widgets = {"url": forms.PasswordInput(render_value=False), "secret": forms.PasswordInput(render_value=False)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The secret's default is callable, so Django would also render its current value in a
        # hidden "initial-secret" input, to detect changes: a write-only field must not.
        self.fields["secret"].show_hidden_initial = False
        if self.instance.pk:
            self.fields["url"].required = False
            self.fields["url"].help_text += " Leave blank to keep the current one."
            self.fields["secret"].help_text += " Leave blank to keep the current one."

    def clean_url(self):
        url = self.cleaned_data["url"] or (self.instance.url if self.instance.pk else "")
        if url and self.cleaned_data.get("kind") == "apprise":
            from notifications.transports import apprise_scheme_problem

            problem = apprise_scheme_problem(url)
            if problem:
                raise forms.ValidationError(problem)
        return url

    def clean_secret(self):
        return self.cleaned_data["secret"] or self.instance.secret


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "confirmed_at", "unsubscribed_at", "created_at"]
    list_filter = ["kind"]
    search_fields = ["email", "url"]
    fields = ["kind", "email", "url", "components", "confirmed_at", "unsubscribed_at", "created_at"]
    readonly_fields = ["created_at"]

    def has_add_permission(self, request):
        return False  # subscriptions start at /subscribe/, with their tokens


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["channel", "subscriber", "status", "attempts", "next_attempt_at", "last_error", "delivered_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["key", "kind", "created_at"]
    list_filter = ["kind"]
    readonly_fields = ["key", "kind", "payload", "created_at"]
    exclude = ["components"]
    inlines = [DeliveryInline]

    def has_add_permission(self, request):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "channel", "subscriber", "status", "attempts", "next_attempt_at", "delivered_at"]
    list_filter = ["status"]
    readonly_fields = ["event", "channel", "subscriber", "status", "attempts", "next_attempt_at", "claimed_until",
                       "last_error", "created_at", "delivered_at"]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry now (failed or pending)")
    def retry_now(self, request, queryset):
        from notifications import tasks

        ids = list(queryset.filter(status__in=[Delivery.Status.FAILED, Delivery.Status.PENDING])
                   .values_list("id", flat=True))
        from kombu.exceptions import OperationalError as BrokerDown

        Delivery.objects.filter(id__in=ids).update(status=Delivery.Status.PENDING, next_attempt_at=timezone.now())
        try:
            for delivery_id in ids:
                tasks.deliver.delay(delivery_id)
        except BrokerDown:
            # Due now in the database: deliver-due-notifications sends them once the broker is back.
            self.message_user(request, f"The broker is unavailable: {len(ids)} deliveries are due and will be sent "
                                       "when it is back.", level=messages.ERROR)
            return
        self.message_user(request, f"{len(ids)} deliveries queued.")

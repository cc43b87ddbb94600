# A platform token is bound to the origin it was stored for (issue 17): a changed base_url never
# receives it. Existing tokens are bound to their platform's current origin. Also: the failure
# class bad_response (a platform's JSON nested too deep), a new choice of Run.failure_class.

from django.db import migrations, models


def bind_existing(apps, schema_editor):
    from probes.models import url_origin

    Account = apps.get_model("probes", "Account")
    for account in Account.objects.select_related("platform").only("id", "platform__base_url"):
        Account.objects.filter(id=account.id).update(token_origin=url_origin(account.platform.base_url))


class Migration(migrations.Migration):

    dependencies = [
        ('probes', '0007_move_to_detection'),
    ]

    operations = [
        migrations.AddField(
            model_name='account',
            name='token_origin',
            field=models.CharField(blank=True, default='', editable=False, max_length=320),
        ),
        migrations.RunPython(bind_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='run',
            name='failure_class',
            field=models.CharField(blank=True, choices=[('timeout', 'Timeout'), ('connect', 'Connect'), ('server_error', 'Server Error'), ('rate_limited', 'Rate Limited'), ('quota_exceeded', 'Quota Exceeded'), ('read_only', 'Read Only'), ('auth', 'Auth'), ('rejected', 'Rejected'), ('invariant', 'Invariant'), ('unexpected', 'Unexpected'), ('bad_response', 'Bad Response')], max_length=20),
        ),
    ]

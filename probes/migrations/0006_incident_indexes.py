# Indexes for the public reads of incidents: their cost must not grow with years of history.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('probes', '0005_rollups'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='incident',
            index=models.Index(fields=['-started_at'], name='incident_recent'),
        ),
        migrations.AddIndex(
            model_name='incident',
            index=models.Index(condition=models.Q(('status__in', ['investigating', 'identified', 'monitoring'])), fields=['-started_at'], name='incident_unresolved'),
        ),
        migrations.AddIndex(
            model_name='incident',
            index=models.Index(fields=['resolved_at'], name='incident_resolved'),
        ),
    ]

"""Channels and subscribers now point at detection.Component (the same table): state only."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('detection', '0001_initial'),
        ('notifications', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='event',
                    name='components',
                    field=models.ManyToManyField(blank=True, related_name='+', to='detection.component'),
                ),
                migrations.AlterField(
                    model_name='subscriber',
                    name='components',
                    field=models.ManyToManyField(blank=True, related_name='subscribers', to='detection.component'),
                ),
            ],
        ),
    ]

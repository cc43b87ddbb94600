"""Components, incidents, maintenances and the rest of what detection judges move here from probes.

State only: the tables exist already and keep their names (db_table "probes_…"); no row is copied.
probes 0007 removes them from probes' state and renames their content types."""

import django.db.models.deletion
import django.utils.timezone
import probes.models
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('probes', '0006_incident_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ComponentGroup',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(default=probes.models.new_public_id, editable=False, max_length=12, unique=True)),
                        ('name', models.CharField(max_length=100, unique=True)),
                        ('description', models.TextField(blank=True)),
                        ('position', models.PositiveIntegerField(default=0)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'probes_componentgroup',
                        'ordering': ['position', 'name'],
                    },
                ),
                migrations.CreateModel(
                    name='Component',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(default=probes.models.new_public_id, editable=False, max_length=12, unique=True)),
                        ('name', models.CharField(max_length=100)),
                        ('description', models.TextField(blank=True)),
                        ('position', models.PositiveIntegerField(default=0)),
                        ('status', models.CharField(choices=[('operational', 'Operational'), ('degraded_performance', 'Degraded performance'), ('partial_outage', 'Partial outage'), ('major_outage', 'Major outage'), ('under_maintenance', 'Under maintenance')], default='operational', max_length=24)),
                        ('stale', models.BooleanField(default=False)),
                        ('status_since', models.DateTimeField(blank=True, help_text='Last status change; empty: since created.', null=True)),
                        ('incident_on_degraded', models.BooleanField(default=False, help_text='Open incidents for degraded performance too.')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('probes', models.ManyToManyField(blank=True, related_name='components', to='probes.probe')),
                        ('group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='components', to='detection.componentgroup')),
                    ],
                    options={
                        'db_table': 'probes_component',
                        'ordering': ['position', 'name'],
                    },
                ),
                migrations.CreateModel(
                    name='Incident',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(default=probes.models.new_public_id, editable=False, max_length=12, unique=True)),
                        ('title', models.CharField(max_length=200)),
                        ('title_locked', models.BooleanField(default=False)),
                        ('status', models.CharField(choices=[('investigating', 'Investigating'), ('identified', 'Identified'), ('monitoring', 'Monitoring'), ('resolved', 'Resolved'), ('postmortem', 'Postmortem')], default='investigating', max_length=16)),
                        ('impact', models.CharField(choices=[('none', 'None'), ('minor', 'Minor'), ('major', 'Major'), ('critical', 'Critical')], default='none', max_length=10)),
                        ('impact_override', models.CharField(blank=True, choices=[('none', 'None'), ('minor', 'Minor'), ('major', 'Major'), ('critical', 'Critical')], max_length=10)),
                        ('automatic', models.BooleanField(default=False)),
                        ('started_at', models.DateTimeField(help_text='Start of the first failing run of the episode.')),
                        ('detected_at', models.DateTimeField(help_text='When the thresholds were met.')),
                        ('monitoring_at', models.DateTimeField(blank=True, null=True)),
                        ('resolved_at', models.DateTimeField(blank=True, help_text='Start of the first run of the recovery.', null=True)),
                        ('started_uncertainty_s', models.FloatField(default=0)),
                        ('resolved_uncertainty_s', models.FloatField(default=0)),
                        ('evidence', models.JSONField(blank=True, default=dict)),
                        ('postmortem_body', models.TextField(blank=True)),
                        ('postmortem_published_at', models.DateTimeField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('platform', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='incidents', to='probes.platform')),
                    ],
                    options={
                        'db_table': 'probes_incident',
                        'ordering': ['-started_at'],
                    },
                ),
                migrations.CreateModel(
                    name='IncidentComponent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('worst_status', models.CharField(choices=[('operational', 'Operational'), ('degraded_performance', 'Degraded performance'), ('partial_outage', 'Partial outage'), ('major_outage', 'Major outage'), ('under_maintenance', 'Under maintenance')], max_length=24)),
                        ('last_status', models.CharField(choices=[('operational', 'Operational'), ('degraded_performance', 'Degraded performance'), ('partial_outage', 'Partial outage'), ('major_outage', 'Major outage'), ('under_maintenance', 'Under maintenance')], max_length=24)),
                        ('joined_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('component', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='detection.component')),
                        ('incident', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='detection.incident')),
                    ],
                    options={
                        'db_table': 'probes_incidentcomponent',
                    },
                ),
                migrations.AddField(
                    model_name='incident',
                    name='components',
                    field=models.ManyToManyField(related_name='incidents', through='detection.IncidentComponent', to='detection.component'),
                ),
                migrations.CreateModel(
                    name='IncidentUpdate',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(default=probes.models.new_public_id, editable=False, max_length=12, unique=True)),
                        ('status', models.CharField(choices=[('investigating', 'Investigating'), ('identified', 'Identified'), ('monitoring', 'Monitoring'), ('resolved', 'Resolved'), ('postmortem', 'Postmortem')], max_length=16)),
                        ('body', models.TextField()),
                        ('automatic', models.BooleanField(default=False)),
                        ('affected_components', models.JSONField(blank=True, default=list)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('incident', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='updates', to='detection.incident')),
                    ],
                    options={
                        'db_table': 'probes_incidentupdate',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='Maintenance',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(default=probes.models.new_public_id, editable=False, max_length=12, unique=True)),
                        ('title', models.CharField(max_length=200)),
                        ('body', models.TextField(blank=True)),
                        ('scheduled_for', models.DateTimeField()),
                        ('scheduled_until', models.DateTimeField()),
                        ('cancelled', models.BooleanField(default=False)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('components', models.ManyToManyField(related_name='maintenances', to='detection.component')),
                    ],
                    options={
                        'db_table': 'probes_maintenance',
                        'ordering': ['-scheduled_for'],
                    },
                ),
                migrations.CreateModel(
                    name='OwnProblem',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('stale_location', 'Location sends no runs'), ('probe_budget', "Probes use up the platform's write limits"), ('scheduler_silent', 'The scheduler dispatches nothing')], max_length=20)),
                        ('subject', models.CharField(help_text='The location or account concerned.', max_length=200)),
                        ('detail', models.TextField(blank=True)),
                        ('opened_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('resolved_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'probes_ownproblem',
                        'constraints': [models.UniqueConstraint(condition=models.Q(('resolved_at__isnull', True)), fields=('kind', 'subject'), name='one_open_problem_per_subject')],
                    },
                ),
                migrations.CreateModel(
                    name='PlacementStateChange',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('old_state', models.CharField(choices=[('unknown', 'Unknown'), ('up', 'Up'), ('degraded', 'Degraded'), ('failing', 'Failing')], max_length=16)),
                        ('new_state', models.CharField(choices=[('unknown', 'Unknown'), ('up', 'Up'), ('degraded', 'Degraded'), ('failing', 'Failing')], max_length=16)),
                        ('cause', models.CharField(max_length=300)),
                        ('changed_at', models.DateTimeField()),
                        ('placement', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='state_changes', to='probes.probelocation')),
                        ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='probes.run')),
                    ],
                    options={
                        'db_table': 'probes_placementstatechange',
                    },
                ),
                migrations.CreateModel(
                    name='ComponentDay',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('runs', models.PositiveIntegerField(default=0)),
                        ('failures', models.PositiveIntegerField(default=0)),
                        ('by_class', models.JSONField(default=dict, help_text='Failure class → count.')),
                        ('latency', models.JSONField(default=dict)),
                        ('observed_s', models.FloatField(default=0)),
                        ('major_s', models.FloatField(default=0)),
                        ('partial_s', models.FloatField(default=0)),
                        ('degraded_s', models.FloatField(default=0)),
                        ('maintenance_s', models.FloatField(default=0)),
                        ('day', models.DateField(help_text="Calendar day in the page's time zone.")),
                        ('component', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='days', to='detection.component')),
                    ],
                    options={
                        'db_table': 'probes_componentday',
                        'constraints': [models.UniqueConstraint(fields=('component', 'day'), name='component_day_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='ComponentHour',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('runs', models.PositiveIntegerField(default=0)),
                        ('failures', models.PositiveIntegerField(default=0)),
                        ('by_class', models.JSONField(default=dict, help_text='Failure class → count.')),
                        ('latency', models.JSONField(default=dict)),
                        ('observed_s', models.FloatField(default=0)),
                        ('major_s', models.FloatField(default=0)),
                        ('partial_s', models.FloatField(default=0)),
                        ('degraded_s', models.FloatField(default=0)),
                        ('maintenance_s', models.FloatField(default=0)),
                        ('hour', models.DateTimeField(help_text='Start of the hour (UTC).')),
                        ('component', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='hours', to='detection.component')),
                    ],
                    options={
                        'db_table': 'probes_componenthour',
                        'constraints': [models.UniqueConstraint(fields=('component', 'hour'), name='component_hour_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='ComponentStatusChange',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('old_status', models.CharField(choices=[('operational', 'Operational'), ('degraded_performance', 'Degraded performance'), ('partial_outage', 'Partial outage'), ('major_outage', 'Major outage'), ('under_maintenance', 'Under maintenance')], max_length=24)),
                        ('new_status', models.CharField(choices=[('operational', 'Operational'), ('degraded_performance', 'Degraded performance'), ('partial_outage', 'Partial outage'), ('major_outage', 'Major outage'), ('under_maintenance', 'Under maintenance')], max_length=24)),
                        ('reason', models.CharField(max_length=300)),
                        ('changed_at', models.DateTimeField()),
                        ('component', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='status_changes', to='detection.component')),
                        ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='probes.run')),
                    ],
                    options={
                        'db_table': 'probes_componentstatuschange',
                        'indexes': [models.Index(fields=['component', 'changed_at'], name='component_history')],
                    },
                ),
                migrations.AddConstraint(
                    model_name='incidentcomponent',
                    constraint=models.UniqueConstraint(fields=('incident', 'component'), name='component_once_per_incident'),
                ),
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
                migrations.AddConstraint(
                    model_name='incident',
                    constraint=models.UniqueConstraint(condition=models.Q(('automatic', True), ('resolved_at__isnull', True)), fields=('platform',), name='one_open_automatic_incident_per_platform'),
                ),
                migrations.AddIndex(
                    model_name='incidentupdate',
                    index=models.Index(fields=['incident', '-created_at'], name='incident_timeline'),
                ),
                migrations.AddIndex(
                    model_name='maintenance',
                    index=models.Index(fields=['scheduled_until', 'scheduled_for'], name='maintenance_window'),
                ),
                migrations.AddIndex(
                    model_name='placementstatechange',
                    index=models.Index(fields=['placement', 'changed_at'], name='placement_history'),
                ),
            ],
        ),
    ]

"""The models detection owns leave probes' state (detection 0001 took them, same tables), and their
content types follow them, so admin history and permissions stay attached."""

from django.db import migrations


MOVED = ['componentgroup', 'component', 'componentstatuschange', 'componenthour', 'componentday', 'placementstatechange', 'incident', 'incidentcomponent', 'incidentupdate', 'maintenance', 'ownproblem']


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        # A content type made for the new label before this ran holds nothing yet: the old one wins.
        if ContentType.objects.filter(app_label=old, model=model).exists():
            ContentType.objects.filter(app_label=new, model=model).delete()
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def content_types_to_detection(apps, schema_editor) -> None:
    _relabel(apps, "probes", "detection")


def content_types_to_probes(apps, schema_editor) -> None:
    _relabel(apps, "detection", "probes")


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('notifications', '0002_components_in_detection'),
        ('probes', '0006_incident_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='component',
                    name='group',
                ),
                migrations.RemoveField(
                    model_name='component',
                    name='probes',
                ),
                migrations.RemoveField(
                    model_name='incidentcomponent',
                    name='component',
                ),
                migrations.RemoveField(
                    model_name='componentday',
                    name='component',
                ),
                migrations.RemoveField(
                    model_name='incident',
                    name='components',
                ),
                migrations.RemoveField(
                    model_name='componenthour',
                    name='component',
                ),
                migrations.RemoveField(
                    model_name='maintenance',
                    name='components',
                ),
                migrations.RemoveField(
                    model_name='componentstatuschange',
                    name='component',
                ),
                migrations.RemoveField(
                    model_name='componentstatuschange',
                    name='run',
                ),
                migrations.RemoveField(
                    model_name='incident',
                    name='platform',
                ),
                migrations.RemoveField(
                    model_name='incidentcomponent',
                    name='incident',
                ),
                migrations.RemoveField(
                    model_name='incidentupdate',
                    name='incident',
                ),
                migrations.DeleteModel(
                    name='OwnProblem',
                ),
                migrations.RemoveField(
                    model_name='placementstatechange',
                    name='placement',
                ),
                migrations.RemoveField(
                    model_name='placementstatechange',
                    name='run',
                ),
                migrations.DeleteModel(
                    name='ComponentGroup',
                ),
                migrations.DeleteModel(
                    name='ComponentDay',
                ),
                migrations.DeleteModel(
                    name='ComponentHour',
                ),
                migrations.DeleteModel(
                    name='Maintenance',
                ),
                migrations.DeleteModel(
                    name='Component',
                ),
                migrations.DeleteModel(
                    name='ComponentStatusChange',
                ),
                migrations.DeleteModel(
                    name='IncidentComponent',
                ),
                migrations.DeleteModel(
                    name='Incident',
                ),
                migrations.DeleteModel(
                    name='IncidentUpdate',
                ),
                migrations.DeleteModel(
                    name='PlacementStateChange',
                ),
            ],
            database_operations=[migrations.RunPython(content_types_to_detection, content_types_to_probes)],
        ),
    ]

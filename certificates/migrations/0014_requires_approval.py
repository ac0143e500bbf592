from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('certificates', '0013_certificate_profile'),
    ]

    operations = [
        migrations.AddField(
            model_name='certificateauthority',
            name='requires_approval',
            field=models.BooleanField(default=False, help_text="Every certificate this CA issues waits for a second person's approval."),
        ),
        migrations.AddField(
            model_name='certificateprofile',
            name='requires_approval',
            field=models.BooleanField(default=False, help_text='A request waits as pending until a second person approves it.'),
        ),
    ]

"""Static files with DEBUG off: collectstatic builds the compressed manifest and WhiteNoise
serves the admin's and the dashboard's files under hashed names, cached for good."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

MANIFEST_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture
def collected(tmp_path):
    root = tmp_path / "static"
    with override_settings(DEBUG=False, STATIC_ROOT=root, STORAGES=MANIFEST_STORAGE):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield root


def test_collectstatic_writes_hashed_and_compressed_files(collected):
    assert (collected / "staticfiles.json").exists()
    assert list(collected.glob("cronjobs/dashboard.*.js"))
    assert list(collected.glob("cronjobs/admin.*.css.gz"))
    assert list(collected.glob("admin/css/base.*.css"))


def test_whitenoise_serves_the_dashboards_files_with_debug_off(collected, admin_user):
    client = Client()  # a new handler: WhiteNoise indexes the collected files at start-up
    client.force_login(admin_user)
    page = client.get(reverse("cronjobs-dashboard")).content.decode()

    script = re.search(r'src="(/static/cronjobs/dashboard\.[0-9a-f]{12}\.js)"', page).group(1)
    style = re.search(r'href="(/static/cronjobs/admin\.[0-9a-f]{12}\.css)"', page).group(1)
    for url in (script, style):
        response = client.get(url, headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        assert "immutable" in response["Cache-Control"]
        assert response.get("Content-Encoding") == "gzip"
    body = b"".join(client.get(script).streaming_content).decode()
    assert "setInterval(refresh" in body

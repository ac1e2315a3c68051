from django.contrib import admin
from django.urls import include, path

from cronjobs.prometheus import metrics_view

admin.site.site_header = "flagged-cron"
admin.site.site_title = "flagged-cron"
admin.site.index_title = "Control room"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("cronjobs.api")),
    path("metrics", metrics_view, name="prometheus-metrics"),
]

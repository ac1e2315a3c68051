from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from cronjobs.views.badges import badge_view
from cronjobs.views.dashboard import dashboard_view
from cronjobs.views.metrics import metrics_view

urlpatterns = [
    # The front door is the overview (cronjobs/views/overview.py).
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    # Before admin.site.urls, whose catch-all would otherwise take the path.
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="cronjobs-dashboard"),
    path("admin/", admin.site.urls),
    path("api/", include("cronjobs.views.api")),
    path("metrics", metrics_view, name="prometheus-metrics"),
    path("badge/<int:badge_id>/<str:secret>.svg", badge_view, name="status-badge"),
]

# Django's own 400s (a malformed or oversized request) are JSON on the API, like its errors.
handler400 = "cronjobs.views.api.bad_request"

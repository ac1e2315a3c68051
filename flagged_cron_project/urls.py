from django.contrib import admin
from django.urls import path

admin.site.site_header = "flagged-cron"
admin.site.site_title = "flagged-cron"
admin.site.index_title = "Control room"

urlpatterns = [
    path("admin/", admin.site.urls),
]

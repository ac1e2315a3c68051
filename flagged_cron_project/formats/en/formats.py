# The admin's read-only fields and the templates' |date show moments as cronjobs.admin.display
# `when` does: 2026-12-06 21:31 UTC (the project's TIME_ZONE, named).
DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"

"""Date formats for every page (settings.FORMAT_MODULE_PATH): one date and time format, with
the zone, wherever the admin shows a moment (docs/admin.md, "Dates")."""

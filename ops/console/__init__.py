"""The operations console: server-rendered pages (Jinja2 + htmx) served by the admin app at /console."""

"""Email: templates, list/operational/one-to-one sends over SMTP, tracking, bounces, nurture programs."""

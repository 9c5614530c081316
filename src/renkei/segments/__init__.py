"""Segmentation: rules compiled to SQL, dynamic/static/suppression lists, reports, calendar."""

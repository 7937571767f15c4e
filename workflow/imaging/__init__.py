"""Imaging: the hospitals' PACS endpoints, linked studies, uploads and rendered frames."""

"""Streamlit-side helpers shared by pages (URL state, progress, errors, page header)."""

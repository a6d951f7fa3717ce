"""Load the mcis-claims plugin for `pytest claims/` and the library's own tests."""
pytest_plugins = ["mcis_claims.plugin"]

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):  # type: ignore[misc]  # untyped
    """Hashed, compressed static files, with ES module imports rewritten to the
    hashed names too, so a cached old module never meets a new page."""

    support_js_module_import_aggregation = True

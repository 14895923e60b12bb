"""Settings for the benchmark's collectstatic fallback only: glmweb's, minus source maps.

A vendored file that names a source map the project doesn't ship makes
`collectstatic` fail under the production storage. The benchmark measures the
relay, not the asset pipeline, so then it collects without following source
map references; the workers themselves run on glmweb.settings unchanged and
read the manifest this writes.
"""

from glmweb.settings import *  # noqa: F403

STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "bench.collect_settings.NoSourceMapStorage"},
}

from whitenoise.storage import CompressedManifestStaticFilesStorage  # noqa: E402


class NoSourceMapStorage(CompressedManifestStaticFilesStorage):
    patterns = tuple(
        (glob, tuple(p for p in found if "sourceMappingURL" not in str(p)))
        for glob, found in CompressedManifestStaticFilesStorage.patterns
    )

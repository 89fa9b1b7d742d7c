"""absl flag definitions of the launchers under ``scripts/`` (and flagfile presets).

The package ``mixmatch_tf`` never reads flags: these functions turn them into
its config objects.
"""

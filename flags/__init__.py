"""absl flag definitions of the programs (``mixmatch_tf/cli``) and the flagfile presets.

Installed as ``mixmatch_tf.flags`` (this folder stays at the top of the repository).
The library ``mixmatch_tf`` never reads flags: these functions turn them into its
config objects.
"""

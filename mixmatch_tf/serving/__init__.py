"""SavedModel export for TF Serving."""
from mixmatch_tf.serving.export import export_saved_model, next_version

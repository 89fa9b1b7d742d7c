"""SavedModel export for TF Serving, and clients for the served models."""
from mixmatch_tf.serving.export import (BYTES_SIGNATURE, IMAGES_SIGNATURE, export_saved_model,
                                        model_name_for_dataset, next_version,
                                        write_models_config)

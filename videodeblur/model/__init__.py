"""The LPRN network, its shipped variants, and weights I/O."""
from videodeblur.model.lprn import LPRN
from videodeblur.model.registry import (DEFAULT_CPU_MODEL, DEFAULT_VIDEO_MODEL, SHIPPED_MODELS, LoadedModel,
                                        default_model_name,
                                        list_models, load_model, shipped_name, shipped_weights_path, weights_origin)
from videodeblur.model.weights import load_weights, read_metadata, save_weights, write_metadata

__all__ = ["LPRN", "LoadedModel", "load_model", "list_models", "load_weights", "save_weights", "read_metadata",
           "write_metadata", "weights_origin",
           "shipped_weights_path", "shipped_name", "default_model_name", "SHIPPED_MODELS", "DEFAULT_VIDEO_MODEL", "DEFAULT_CPU_MODEL"]

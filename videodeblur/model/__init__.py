"""The LPRN network, its shipped variants, and weights I/O.

Its names are imported on first use (``videodeblur.lazy_exports``): the network and weights modules
load torch (2-3 s), and a command's mistyped path should be said before that.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from videodeblur.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from videodeblur.model.lprn import LPRN
    from videodeblur.model.registry import (DEFAULT_CPU_MODEL, DEFAULT_VIDEO_MODEL, SHIPPED_MODELS, LoadedModel,
                                            default_model_name, list_models, load_model, shipped_name,
                                            shipped_weights_path, weights_origin)
    from videodeblur.model.weights import load_weights, read_metadata, save_weights, write_metadata

__all__ = ["LPRN", "LoadedModel", "load_model", "list_models", "load_weights", "save_weights", "read_metadata",
           "write_metadata", "weights_origin",
           "shipped_weights_path", "shipped_name", "default_model_name", "SHIPPED_MODELS", "DEFAULT_VIDEO_MODEL", "DEFAULT_CPU_MODEL"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "lprn": ("LPRN",),
    "registry": ("DEFAULT_CPU_MODEL", "DEFAULT_VIDEO_MODEL", "SHIPPED_MODELS", "LoadedModel", "default_model_name",
                 "list_models", "load_model", "shipped_name", "shipped_weights_path", "weights_origin"),
    "weights": ("load_weights", "read_metadata", "save_weights", "write_metadata"),
})

"""Association: what carries identity from window to window, one mechanism per module, selected by
``association=<name>`` (conf/association): ``iou`` (IoU and height on the shared frame), ``embeddings``
(learned link embeddings), ``track_queries`` (MOTR's carried queries), ``id_decoder`` (MOTIP's ID
decoder). The interface: ``base.Association``."""

from scene_model.association.base import Association, CarriedTargets, Chain

# The loss terms an association may add over a chain of windows (logged as <stage>/loss/<name>).
ASSOCIATION_TERMS = ("link", "id")

__all__ = ["ASSOCIATION_TERMS", "Association", "CarriedTargets", "Chain"]

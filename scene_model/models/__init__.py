"""Models: torchvision backbone, space-time transformer, BBoxHead, SceneModel."""

from scene_model.models.backbone import Backbone
from scene_model.models.head import BBoxHead
from scene_model.models.scene_model import SceneModel

__all__ = ["BBoxHead", "Backbone", "SceneModel"]

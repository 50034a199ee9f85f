"""Models: torchvision backbone, space-time transformer, BBoxHead, build_scene_model."""

from scene_model.models.backbone import Backbone
from scene_model.models.head import BBoxHead
from scene_model.models.scene_model import OUTPUT_KEYS, SceneModel, build_scene_model

__all__ = ["OUTPUT_KEYS", "BBoxHead", "Backbone", "SceneModel", "build_scene_model"]

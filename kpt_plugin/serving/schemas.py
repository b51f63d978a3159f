"""PaddleX's serving schemas for the ``human_keypoint_detection`` pipeline (field names and types as PaddleX 3.x:
``paddlex/inference/serving/schemas/human_keypoint_detection.py`` and ``infra/models.py``).

The response envelope is PaddleX's ``AIStudioResultResponse`` (``logId``, ``errorCode`` 0, ``errorMsg``
``"Success"``, ``result``); errors are ``AIStudioNoResultResponse`` (``errorCode`` = the HTTP status).
"""
from typing import List, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import Literal

__all__ = ['INFER_ENDPOINT', 'HEALTH_ENDPOINT', 'InferRequest', 'Person', 'InferResult', 'InferResponse',
           'NoResultResponse']

INFER_ENDPOINT = '/human-keypoint-detection'
HEALTH_ENDPOINT = '/health'

BoundingBox = Tuple[float, float, float, float]
KeyPoint = Tuple[float, float, float]


class InferRequest(BaseModel):
    """PaddleX's request. Unlike PaddleX (which ignores them), unknown fields are refused, so a misspelt
    ``detThreshhold`` fails loudly instead of silently running with the default."""

    model_config = ConfigDict(extra='forbid')

    image: str = Field(description='http(s) URL of an image, or the Base64 of an image file (jpg, png, bmp, '
                       'webp, tiff)')
    detThreshold: Optional[float] = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description="person detector score threshold in [0, 1]; null: the pipeline's (0.5)")
    # PaddleX 3.x's per-request switch of the drawn image (its app reads request.visualize); null: the server's
    visualize: Optional[bool] = Field(None, description="return the drawn image; null: the server's setting")


class Person(BaseModel):
    bbox: BoundingBox = Field(description='person box [x1, y1, x2, y2] in pixels')
    kpts: List[KeyPoint] = Field(description='17 COCO keypoints [x, y, score] in pixels')
    detScore: float
    kptScore: float


class InferResult(BaseModel):
    persons: List[Person]
    image: Optional[str] = Field(None, description='Base64 JPEG of the image with the skeletons drawn; absent when '
                                 'visualization is off (PaddleX leaves out null fields)')


class InferResponse(BaseModel):
    logId: str
    result: InferResult
    errorCode: Literal[0] = 0
    errorMsg: Literal['Success'] = 'Success'


class NoResultResponse(BaseModel):
    logId: str
    errorCode: int
    errorMsg: str

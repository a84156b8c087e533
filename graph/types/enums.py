"""Enums of the public schema."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum
class ModelTask(Enum):
    CLASSIFICATION = "CLASSIFICATION"
    REGRESSION = "REGRESSION"


@strawberry.enum
class DataSplit(Enum):
    TRAIN = "TRAIN"
    VALIDATION = "VALIDATION"
    TEST = "TEST"


@strawberry.enum
class FeatureType(Enum):
    NUMBER = "NUMBER"
    INTEGER = "INTEGER"
    BOOLEAN = "BOOLEAN"
    CATEGORY = "CATEGORY"
    TEXT = "TEXT"

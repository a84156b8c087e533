"""Scope checks: a field refuses callers whose API key lacks its scope (code FORBIDDEN)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission

from modelql.services.api_keys import Scope


def require_scope(scope: Scope) -> type[BasePermission]:
    """A permission class letting through only callers holding `scope`."""

    class RequireScope(BasePermission):
        required_scope = scope
        message = f"This field needs an API key with the `{scope}` scope."
        error_extensions = {"code": "FORBIDDEN", "requiredScope": str(scope)}

        def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
            return scope in info.context.scopes

    RequireScope.__name__ = f"Require{scope.capitalize()}Scope"
    return RequireScope


CanRead = require_scope(Scope.READ)
CanPredict = require_scope(Scope.PREDICT)
CanAudit = require_scope(Scope.AUDIT)
CanAdmin = require_scope(Scope.ADMIN)
CanGiveFeedback = require_scope(Scope.FEEDBACK)

"""The `/graphql` endpoint: Strawberry's FastAPI router with a typed context and our GraphiQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property

import strawberry
from fastapi import Request
from strawberry.fastapi import GraphQLRouter

from graph.context import GraphContext, GraphDependencies

EXAMPLE_QUERY = """# ModelQL: the model catalogue and its predictions. Press the run button.
{
  models(first: 10) {
    nodes {
      name
      task
      defaultVersion {
        number
        algorithm
        aliases
        f1: metric(name: "f1_macro")
        inputSchema { name type minimum maximum }
        performance(split: TEST, slice: "overall") {
          numSamples
          metrics { name value }
        }
      }
    }
  }
}
"""

_STRAWBERRY_EXAMPLE_START = "const EXAMPLE_QUERY = `"


class ModelQLRouter(GraphQLRouter):
    """Serves GraphiQL pre-loaded with a query that works on the demo catalogue."""

    @cached_property
    def graphql_ide_html(self) -> str:
        html = super().graphql_ide_html
        start = html.index(_STRAWBERRY_EXAMPLE_START) + len(_STRAWBERRY_EXAMPLE_START)
        end = html.index("`", start)
        replacement = EXAMPLE_QUERY.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
        return html[:start] + replacement + html[end:]


async def _context(request: Request) -> AsyncIterator[GraphContext]:
    dependencies: GraphDependencies = request.app.state.graph_dependencies
    context = GraphContext(
        dependencies,
        request_id=request.state.request_id,
        caller=getattr(request.state, "caller", None),
    )
    try:
        yield context
    finally:
        await context.db.close()


def create_graphql_router(schema: strawberry.Schema, *, graphiql: bool) -> ModelQLRouter:
    return ModelQLRouter(
        schema,
        graphql_ide="graphiql" if graphiql else None,
        context_getter=_context,
        allow_queries_via_get=True,
    )

"""The GraphQL edge: Strawberry types, resolvers, loaders, limits and error mapping."""

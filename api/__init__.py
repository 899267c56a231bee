"""The GraphQL API (graphene schema served by Starlette), authentication, permissions and the CLI."""

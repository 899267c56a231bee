"""The graphene schema, grouped per domain: each module holds its types, queries and mutations."""

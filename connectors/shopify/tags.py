"""Customer tags in the store (``tagsAdd``)."""
from __future__ import annotations

from connectors.base import Shop
from connectors.shopify import api
from plugin.engine.actions import Tag
from plugin.errors import StoreError

ADD_TAGS = """
mutation KeepwellTagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) {
    node { id }
    userErrors { field message }
  }
}
"""


def add_tag(shop: Shop, customer_id: str, action: Tag) -> None:
    """Add the action's tag to the customer in the store; adding a tag the customer has is a no-op there."""
    tag = action.tag
    data = api.execute(shop, ADD_TAGS, {"id": api.gid("Customer", customer_id), "tags": [tag]})
    errors = api.user_errors(data.get("tagsAdd"))
    if errors:
        raise StoreError(f"Shopify refused tag {tag!r} for customer {customer_id}: {api.user_error_message(errors)}",
                         retryable=False, code="USER_ERROR")

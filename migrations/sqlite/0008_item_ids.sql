-- Stored items by id across all of a tenant's responses and conversations: an `item_reference` names any stored item
-- of its tenant, also one outside the chain or conversation its turn continues.
CREATE INDEX items_by_tenant_item ON items (tenant, item_id);
CREATE INDEX conversation_items_by_tenant_item ON conversation_items (tenant, item_id);

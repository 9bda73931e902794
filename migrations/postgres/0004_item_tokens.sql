-- Each item's token count, computed once when it is stored, so resolving a history sums stored numbers instead of
-- tokenizing it again. NULL for items stored before this column existed: readers count those themselves.
ALTER TABLE items ADD COLUMN tokens BIGINT;
ALTER TABLE conversation_items ADD COLUMN tokens BIGINT;

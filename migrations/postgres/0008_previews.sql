-- What lists show of each response and conversation without reading its items: the text of a response's last input
-- message and of a conversation's first message, at most 200 characters (NULL when there is none). Set when a turn
-- or a conversation's first message is stored; rows stored before are filled here the same way.
ALTER TABLE responses ADD COLUMN preview TEXT;
ALTER TABLE conversations ADD COLUMN preview TEXT;

UPDATE responses SET preview = (
    SELECT substr(CASE jsonb_typeof(CAST(i.body AS jsonb) -> 'content')
            WHEN 'string' THEN CAST(i.body AS jsonb) ->> 'content'
            WHEN 'array' THEN (SELECT string_agg(e.part ->> 'text', chr(10) ORDER BY e.n)
                FROM jsonb_array_elements(CAST(i.body AS jsonb) -> 'content') WITH ORDINALITY AS e(part, n)
                WHERE jsonb_typeof(e.part -> 'text') = 'string')
        END, 1, 200)
    FROM items i
    WHERE i.response_id = responses.id AND i.direction = 0 AND CAST(i.body AS jsonb) ->> 'type' = 'message'
    ORDER BY i.position DESC LIMIT 1)
WHERE deleted_at IS NULL;

UPDATE conversations SET preview = (
    SELECT substr(CASE jsonb_typeof(CAST(ci.body AS jsonb) -> 'content')
            WHEN 'string' THEN CAST(ci.body AS jsonb) ->> 'content'
            WHEN 'array' THEN (SELECT string_agg(e.part ->> 'text', chr(10) ORDER BY e.n)
                FROM jsonb_array_elements(CAST(ci.body AS jsonb) -> 'content') WITH ORDINALITY AS e(part, n)
                WHERE jsonb_typeof(e.part -> 'text') = 'string')
        END, 1, 200)
    FROM conversation_items ci
    WHERE ci.conversation_id = conversations.id AND CAST(ci.body AS jsonb) ->> 'type' = 'message'
    ORDER BY ci.position LIMIT 1)
WHERE deleted_at IS NULL;

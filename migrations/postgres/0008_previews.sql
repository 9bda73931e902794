-- JSON text as `jsonb`, without the NULs (`\u0000`) a client's text may hold, which `jsonb` and text columns refuse:
-- how the lists read stored JSON (their metadata filters, and the previews below).
CREATE FUNCTION json_without_nul(body text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CAST(CASE WHEN strpos(body, '\u0000') = 0 THEN body
        ELSE regexp_replace(body, '(?<!\\)((\\\\)*)\\u0000', '\1', 'g') END AS jsonb)
$$;

-- What lists show of each response and conversation without reading its items: the text of a response's last input
-- message and of a conversation's first message, at most 200 characters (NULL when there is none). Set when a turn
-- or a conversation's first message is stored; rows stored before are filled here the same way.
ALTER TABLE responses ADD COLUMN preview TEXT;
ALTER TABLE conversations ADD COLUMN preview TEXT;

UPDATE responses SET preview = (
    SELECT substr(CASE jsonb_typeof(json_without_nul(i.body) -> 'content')
            WHEN 'string' THEN json_without_nul(i.body) ->> 'content'
            WHEN 'array' THEN (SELECT string_agg(e.part ->> 'text', chr(10) ORDER BY e.n)
                FROM jsonb_array_elements(json_without_nul(i.body) -> 'content') WITH ORDINALITY AS e(part, n)
                WHERE jsonb_typeof(e.part -> 'text') = 'string')
        END, 1, 200)
    FROM items i
    WHERE i.response_id = responses.id AND i.direction = 0 AND json_without_nul(i.body) ->> 'type' = 'message'
    ORDER BY i.position DESC LIMIT 1)
WHERE deleted_at IS NULL;

UPDATE conversations SET preview = (
    SELECT substr(CASE jsonb_typeof(json_without_nul(ci.body) -> 'content')
            WHEN 'string' THEN json_without_nul(ci.body) ->> 'content'
            WHEN 'array' THEN (SELECT string_agg(e.part ->> 'text', chr(10) ORDER BY e.n)
                FROM jsonb_array_elements(json_without_nul(ci.body) -> 'content') WITH ORDINALITY AS e(part, n)
                WHERE jsonb_typeof(e.part -> 'text') = 'string')
        END, 1, 200)
    FROM conversation_items ci
    WHERE ci.conversation_id = conversations.id AND json_without_nul(ci.body) ->> 'type' = 'message'
    ORDER BY ci.position LIMIT 1)
WHERE deleted_at IS NULL;

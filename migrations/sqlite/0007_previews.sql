-- What lists show of each response and conversation without reading its items: the text of a response's last input
-- message and of a conversation's first message, at most 200 characters (NULL when there is none). Set when a turn
-- or a conversation's first message is stored; rows stored before are filled here the same way, but for a message
-- whose text holds a NUL (`\u0000`), which SQLite's JSON functions cut the text at: that one is left without.
ALTER TABLE responses ADD COLUMN preview TEXT;
ALTER TABLE conversations ADD COLUMN preview TEXT;

UPDATE responses SET preview = (
    SELECT CASE WHEN instr(i.body, '\u0000') = 0 THEN substr(CASE json_type(i.body, '$.content')
            WHEN 'text' THEN json_extract(i.body, '$.content')
            WHEN 'array' THEN (SELECT group_concat(json_extract(p.value, '$.text'), char(10))
                FROM json_each(i.body, '$.content') p WHERE json_type(p.value, '$.text') = 'text')
        END, 1, 200) END
    FROM items i
    WHERE i.response_id = responses.id AND i.direction = 0 AND json_extract(i.body, '$.type') = 'message'
    ORDER BY i.position DESC LIMIT 1)
WHERE deleted_at IS NULL;

UPDATE conversations SET preview = (
    SELECT CASE WHEN instr(ci.body, '\u0000') = 0 THEN substr(CASE json_type(ci.body, '$.content')
            WHEN 'text' THEN json_extract(ci.body, '$.content')
            WHEN 'array' THEN (SELECT group_concat(json_extract(p.value, '$.text'), char(10))
                FROM json_each(ci.body, '$.content') p WHERE json_type(p.value, '$.text') = 'text')
        END, 1, 200) END
    FROM conversation_items ci
    WHERE ci.conversation_id = conversations.id AND json_extract(ci.body, '$.type') = 'message'
    ORDER BY ci.position LIMIT 1)
WHERE deleted_at IS NULL;

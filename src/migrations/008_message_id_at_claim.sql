-- A delivery's Message-ID is now written when it is first claimed, and folding the sent log no
-- longer writes it. A digest logged as sent by an earlier version, and not yet folded, gets the
-- id it was sent with here.
UPDATE deliveries SET message_id = (SELECT l.message_id FROM sent_log l WHERE l.delivery_id = deliveries.id)
WHERE message_id IS NULL AND id IN (SELECT delivery_id FROM sent_log);

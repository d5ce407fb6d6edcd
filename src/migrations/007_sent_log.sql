-- A sent digest is recorded first as one row appended here, in the durable group commit its
-- worker waits for: one or two pages per commit instead of the delivery's row, three of its
-- indexes and the subscriber's row (BENCHMARKS.md, "The sent log"). The next claim, plan or run
-- end folds the rows into `deliveries` and `subscribers` and empties the table, so every
-- reader that matters sees them there. SQLite only: on PostgreSQL a group is one statement.
CREATE TABLE sent_log (
    delivery_id   INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL,
    message_id    TEXT NOT NULL,
    sent_us       INTEGER NOT NULL,
    window_end_us INTEGER NOT NULL
);

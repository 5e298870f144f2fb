-- Which group-committed INSERT created the row (a random id per batch), so
-- a batch can tell the rows it created from ones that already existed; an
-- existing row keeps its value. NULL for rows written one at a time.
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS insert_batch BIGINT NULL

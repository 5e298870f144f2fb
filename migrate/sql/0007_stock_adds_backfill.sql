-- Templates created before stock_adds existed have no credit row, so their
-- stock would never reach the Redis sub-stocks: give each its whole stock
-- as one unapplied credit, which reconcile applies. Templates that have a
-- credit row already are left alone, so running this twice changes nothing.
INSERT INTO stock_adds (template_id, amount, applied, created_at)
SELECT t.id, t.stock, 0, UTC_TIMESTAMP(3) FROM templates t
WHERE NOT EXISTS (SELECT 1 FROM stock_adds s WHERE s.template_id = t.id)

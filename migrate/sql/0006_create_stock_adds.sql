-- Every credit of stock to a template (its initial stock, then operators'
-- additions), written in the same transaction as templates.stock. Each is
-- applied to the Redis sub-stocks idempotently (a marker per add and sub),
-- and re-applied by reconcile until applied = 1, so a crash between the
-- MySQL commit and Redis neither loses nor doubles stock.
CREATE TABLE IF NOT EXISTS stock_adds (
  id          BIGINT      NOT NULL AUTO_INCREMENT,
  template_id BIGINT      NOT NULL,
  amount      BIGINT      NOT NULL,
  applied     TINYINT     NOT NULL DEFAULT 0,
  created_at  DATETIME(3) NOT NULL,
  PRIMARY KEY (id),
  KEY idx_stock_adds_template (template_id, applied)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci

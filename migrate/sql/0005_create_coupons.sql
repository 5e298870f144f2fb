-- Claimed coupons. One row per successful claim, written (group-committed)
-- before the claim is answered. (template_id, request_id) makes a request
-- issue at most one coupon; (template_id, user_id, slot) with slot in
-- 1..per_user_limit makes the per-user limit hold in MySQL itself. sub and
-- take_seq say which Redis sub-stock the coupon came from and the take's
-- sequence number there, so reconcile can compare a consistent snapshot.
-- Ids come from a Redis counter (see coupon/ids.go), so a group-committed
-- INSERT knows its rows' ids without reading them back.
CREATE TABLE IF NOT EXISTS coupons (
  id           BIGINT      NOT NULL AUTO_INCREMENT,
  template_id  BIGINT      NOT NULL,
  user_id      BIGINT      NOT NULL,
  slot         INT         NOT NULL,
  request_id   VARCHAR(64) NOT NULL,
  status       ENUM('unused','locked','used','expired') NOT NULL DEFAULT 'unused',
  order_id     VARCHAR(64) NULL,
  expires_at   DATETIME(3) NOT NULL,
  sub          INT         NOT NULL,
  take_seq     BIGINT      NOT NULL,
  claimed_at   DATETIME(3) NOT NULL,
  updated_at   DATETIME(3) NOT NULL,
  used_at      DATETIME(3) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_coupons_template_request (template_id, request_id),
  UNIQUE KEY uq_coupons_template_user_slot (template_id, user_id, slot),
  KEY idx_coupons_template_sub (template_id, sub, take_seq),
  KEY idx_coupons_user (user_id, status),
  KEY idx_coupons_status_expires (status, expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- Coupon templates: what a drop offers, how much of it, and when.
CREATE TABLE IF NOT EXISTS templates (
  id              BIGINT       NOT NULL AUTO_INCREMENT,
  name            VARCHAR(128) NOT NULL,
  type            ENUM('fixed','percent') NOT NULL,
  value           BIGINT       NOT NULL,
  threshold_cents BIGINT       NOT NULL DEFAULT 0,
  stock           BIGINT       NOT NULL,
  issued          BIGINT       NOT NULL DEFAULT 0,
  per_user_limit  INT          NOT NULL DEFAULT 1,
  grab_start      DATETIME(3)  NOT NULL,
  grab_end        DATETIME(3)  NOT NULL,
  valid_until     DATETIME(3)  NULL,
  valid_days      INT          NULL,
  version         BIGINT       NOT NULL DEFAULT 1,
  created_at      DATETIME(3)  NOT NULL,
  updated_at      DATETIME(3)  NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci

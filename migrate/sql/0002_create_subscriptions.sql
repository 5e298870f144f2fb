-- Reminder subscriptions: one row per (user, template), kept across
-- cancel and re-subscribe; version orders writes for the Redis index.
CREATE TABLE IF NOT EXISTS subscriptions (
  id          BIGINT      NOT NULL AUTO_INCREMENT,
  user_id     BIGINT      NOT NULL,
  template_id BIGINT      NOT NULL,
  push_at     DATETIME(3) NOT NULL,
  status      ENUM('pending','sent','cancelled') NOT NULL DEFAULT 'pending',
  version     BIGINT      NOT NULL,
  push_id     VARCHAR(64) NULL,
  sent_at     DATETIME(3) NULL,
  created_at  DATETIME(3) NOT NULL,
  updated_at  DATETIME(3) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_subscriptions_user_template (user_id, template_id),
  KEY idx_subscriptions_status_push_at (status, push_at),
  KEY idx_subscriptions_template (template_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci

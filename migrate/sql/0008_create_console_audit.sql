-- The console's audit log: every action an operator confirmed (pause,
-- resume, a change of N, a replay of dead letters), who (the operator
-- token's fingerprint, never the token), what, when, and what came of it.
-- A row is written as "started" before the action runs and settled to
-- "ok" or "failed" after, so an action is never done without a trace.
CREATE TABLE IF NOT EXISTS console_audit (
  id         BIGINT       NOT NULL AUTO_INCREMENT,
  at         DATETIME(3)  NOT NULL,
  operator   VARCHAR(64)  NOT NULL,
  action     VARCHAR(32)  NOT NULL,
  detail     VARCHAR(255) NOT NULL,
  result     ENUM('started','ok','failed') NOT NULL,
  message    VARCHAR(1000) NOT NULL DEFAULT '',
  settled_at DATETIME(3)  NULL,
  PRIMARY KEY (id),
  KEY idx_console_audit_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci

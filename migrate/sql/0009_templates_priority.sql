-- A template's priority: which reminders go first when the cluster cannot
-- emit everything that is due at once. Existing templates are 'normal'.
-- The ENUM's order (high < normal < low) makes ORDER BY priority put the
-- highest first. Stored and answered; scheduling by priority comes with
-- issue 12.
ALTER TABLE templates ADD COLUMN IF NOT EXISTS priority ENUM('high','normal','low') NOT NULL DEFAULT 'normal' AFTER substocks

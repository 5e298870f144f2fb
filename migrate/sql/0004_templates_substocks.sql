-- How many Redis sub-stock keys a template's stock is split over (each on
-- its own Redis Cluster slot), so one hot template is not one hot key.
ALTER TABLE templates ADD COLUMN IF NOT EXISTS substocks INT NOT NULL DEFAULT 8

-- When each credential was last handed out (Unix ms), written coarsely (about
-- once a minute) so that the refresh budget's order survives a restart. Not a
-- change the feed reports: it changes nothing another process serves.
ALTER TABLE credentials ADD COLUMN last_handed_out_at INTEGER;

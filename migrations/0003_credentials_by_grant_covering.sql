-- The load at start reads every grant in id order with its credentials. Grant
-- ids are random, credentials sit in the order they were added, so looking up
-- each grant's credential row jumped to a random page of the table: about one
-- read of the file per credential (a million reads at a million credentials).
-- With the credential's id and extras in the index, the load reads it in
-- grant order and never visits the table; every other lookup by grant_id uses
-- the index's first column as before.
CREATE INDEX credentials_by_grant_with_extras ON credentials (grant_id, id, extras);
DROP INDEX credentials_by_grant;

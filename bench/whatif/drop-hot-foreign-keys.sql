-- What-if for bench/imaptest.sh --pg-sql: drops the foreign keys that
-- APPEND, EXPUNGE and COPY check on every row (messages, contents,
-- uid_log, expunged, private_seen, thread_ids), to measure what the
-- checks cost PostgreSQL under load. Never for a real database: tern
-- relies on them (an expunged message's private \Seen goes by cascade).
DO $$
DECLARE r record;
BEGIN
	FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
		WHERE contype = 'f' AND conrelid::regclass::text IN
			('messages', 'contents', 'uid_log', 'expunged', 'private_seen', 'thread_ids')
	LOOP
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
	END LOOP;
END $$;

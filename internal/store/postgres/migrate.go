package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema steps, in order: migrations[i] brings the
// schema from version i to i+1. The version is kept in tern_schema. A
// step is added at the end and never changed once released.
//
// Everything is in one database for all users; every row a user owns is
// reached through users.id (directly or through mailboxes.id), and a
// user's rows go with the user (ON DELETE CASCADE). Names are compared
// byte by byte (COLLATE "C"), whatever the database's locale, so that a
// mailbox's children are the name range [name+"/", name+"0").
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE users(
	id bigserial PRIMARY KEY,
	name text COLLATE "C" NOT NULL UNIQUE,
	password_hash text NOT NULL,
	created timestamptz NOT NULL DEFAULT now(),
	-- the last UIDVALIDITY given to one of the user's mailboxes
	uidvalidity bigint NOT NULL DEFAULT 0,
	-- quota limits (0: none) and exact usage, kept by the writes
	quota_storage bigint NOT NULL DEFAULT 0,
	quota_messages bigint NOT NULL DEFAULT 0,
	used_messages bigint NOT NULL DEFAULT 0,
	used_storage bigint NOT NULL DEFAULT 0
);
CREATE TABLE mailboxes(
	id bigserial PRIMARY KEY,
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name text COLLATE "C" NOT NULL,
	uidvalidity bigint NOT NULL,
	uidnext bigint NOT NULL DEFAULT 1,
	highestmodseq bigint NOT NULL DEFAULT 1,
	recent_mark bigint NOT NULL DEFAULT 0,
	special_use text NOT NULL DEFAULT '',
	noselect boolean NOT NULL DEFAULT false,
	UNIQUE(user_id, name)
);
-- Keywords' account-wide first spelling, by lower-case form.
CREATE TABLE keywords(
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	folded text COLLATE "C" NOT NULL,
	name text NOT NULL,
	PRIMARY KEY(user_id, folded)
);
CREATE TABLE mailbox_keywords(
	mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	folded text COLLATE "C" NOT NULL,
	PRIMARY KEY(mailbox_id, folded)
);
-- Message bodies by content address (SHA-256), shared by every user
-- who has the same bytes; refs counts the contents rows using one.
CREATE TABLE bodies(
	hash bytea PRIMARY KEY,
	size bigint NOT NULL,
	refs bigint NOT NULL,
	data bytea NOT NULL
);
-- One delivered message's parse results, shared by its copies within
-- one account (COPY, MOVE keep the content).
CREATE TABLE contents(
	id bigserial PRIMARY KEY,
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	body_hash bytea NOT NULL REFERENCES bodies(hash),
	size bigint NOT NULL,
	email_id text NOT NULL,
	thread_id text NOT NULL,
	sent_date bigint,
	sent_tz bigint,
	envelope bytea,
	body bytea,
	bodystructure bytea,
	parts bytea,
	header bytea,
	message_id text NOT NULL DEFAULT '',
	in_reply_to text NOT NULL DEFAULT '',
	refs text NOT NULL DEFAULT ''
);
CREATE INDEX contents_user ON contents(user_id);
CREATE TABLE messages(
	mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid bigint NOT NULL,
	modseq bigint NOT NULL,
	sysflags bigint NOT NULL DEFAULT 0,
	keywords text NOT NULL DEFAULT '',
	content_id bigint NOT NULL REFERENCES contents(id),
	size bigint NOT NULL,
	internal_date bigint NOT NULL,
	internal_tz bigint NOT NULL,
	save_date bigint NOT NULL,
	PRIMARY KEY(mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_content ON messages(content_id);
-- Expunged UIDs, kept for QRESYNC, as ranges.
CREATE TABLE expunged(
	mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid_lo bigint NOT NULL,
	uid_hi bigint NOT NULL,
	modseq bigint NOT NULL,
	PRIMARY KEY(mailbox_id, uid_lo)
);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
-- The first UID each modseq allocated: which UIDs existed at a modseq.
CREATE TABLE uid_log(
	mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	modseq bigint NOT NULL,
	uid_first bigint NOT NULL,
	PRIMARY KEY(mailbox_id, modseq)
);
CREATE TABLE subscriptions(
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name text COLLATE "C" NOT NULL,
	PRIMARY KEY(user_id, name)
);
-- Message ids seen at delivery and their thread (RFC 8474 THREADID).
CREATE TABLE thread_ids(
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	message_id text COLLATE "C" NOT NULL,
	thread_id text NOT NULL,
	PRIMARY KEY(user_id, message_id)
);
-- Annotations (RFC 5464); mailbox_id 0 holds the server's entries.
-- Names are lower case; a mailbox's entries go with it in DeleteMailbox.
CREATE TABLE metadata(
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	mailbox_id bigint NOT NULL,
	entry text COLLATE "C" NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY(user_id, mailbox_id, entry)
);
`,
	// 2: Sieve scripts (store.SieveStore); at most one active per user.
	`
CREATE TABLE sieve_scripts(
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name text COLLATE "C" NOT NULL,
	content bytea NOT NULL,
	active boolean NOT NULL DEFAULT false,
	PRIMARY KEY(user_id, name)
);
CREATE UNIQUE INDEX sieve_scripts_active ON sieve_scripts(user_id) WHERE active;
`,
	// 3: access control lists (RFC 4314, acl.go).
	`
CREATE TABLE acl(
	mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	identifier text COLLATE "C" NOT NULL,
	rights text NOT NULL,
	PRIMARY KEY(mailbox_id, identifier)
);
CREATE INDEX acl_identifier ON acl(identifier);
`,
	// 4: Sieve action state (sievestate.go): vacation replies sent and
	// duplicate ids seen, each until expires (Unix milliseconds).
	`
CREATE TABLE sieve_state(
	user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	kind text COLLATE "C" NOT NULL,
	key text COLLATE "C" NOT NULL,
	expires bigint NOT NULL,
	PRIMARY KEY(user_id, kind, key)
);
CREATE INDEX sieve_state_expires ON sieve_state(user_id, expires);
`,
	// 5: FETCH PREVIEW text (RFC 8970), computed at delivery; NULL for
	// messages stored before.
	`
ALTER TABLE contents ADD COLUMN preview text;
`,
	// 6: bodies in an external blob store (blobs.go): data is NULL for
	// those (the bytes are in the store under hex(hash)); such a body
	// that no content uses stays with refs = 0 and the time it was
	// released, pending deletion by the blob garbage collector.
	`
ALTER TABLE bodies ALTER COLUMN data DROP NOT NULL;
ALTER TABLE bodies ADD COLUMN released timestamptz;
CREATE INDEX bodies_released ON bodies(released) WHERE refs = 0;
`,
	// 7: the \Seen of users other than the owner on shared mailboxes
	// (seen.go); a row goes with its message.
	`
CREATE TABLE private_seen(
	mailbox_id bigint NOT NULL,
	uid bigint NOT NULL,
	viewer text COLLATE "C" NOT NULL,
	seen boolean NOT NULL,
	modseq bigint NOT NULL,
	PRIMARY KEY(mailbox_id, uid, viewer),
	FOREIGN KEY(mailbox_id, uid) REFERENCES messages(mailbox_id, uid) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX private_seen_modseq ON private_seen(mailbox_id, viewer, modseq) INCLUDE (seen);
CREATE INDEX private_seen_viewer ON private_seen(viewer);
`,
	// 8: deleting a body (at its last reference, or by the blob
	// collector) makes PostgreSQL check the foreign key from
	// contents.body_hash: without this index a sequential scan of every
	// user's contents per deleted body.
	`
CREATE INDEX contents_body ON contents(body_hash);
`,
	// 9: the \Deleted messages of each mailbox, which EXPUNGE removes:
	// found without reading the mailbox's other messages.
	`
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE sysflags & 8 <> 0;
`,
	// 10: the full-text index (textindex.go): each body's searchable
	// text (search.Doc, byte for byte) under the body's hash, and the
	// bodies whose text is still to be extracted (or could not be:
	// failed); the bodies already stored are queued.
	`
CREATE TABLE body_text(
	hash bytea PRIMARY KEY REFERENCES bodies(hash) ON DELETE CASCADE,
	header bytea NOT NULL,
	fields bytea NOT NULL,
	body bytea NOT NULL,
	mime bytea NOT NULL
);
CREATE TABLE text_queue(
	hash bytea PRIMARY KEY REFERENCES bodies(hash) ON DELETE CASCADE,
	queued timestamptz NOT NULL DEFAULT now(),
	failed boolean NOT NULL DEFAULT false
);
INSERT INTO text_queue(hash) SELECT hash FROM bodies WHERE refs > 0;
`,
	// 11: the marks a Store writes when it opens or resets, so that it
	// asks a read replica only once the replica shows its latest mark
	// (replica.go): a replica left on the timeline of a primary that
	// failed over never shows one.
	`
CREATE TABLE replica_marks(
	token bytea PRIMARY KEY,
	made timestamptz NOT NULL DEFAULT now()
);
`,
	// 12: a body's object is never named again once a DELETE of it may
	// have been sent (blobs.go): delete_sent is when the collector last
	// marked it (committed before sending), object_gone says a DELETE
	// succeeded. A body that comes back after delete_sent keeps its
	// bytes in the row.
	`
ALTER TABLE bodies ADD COLUMN delete_sent timestamptz;
ALTER TABLE bodies ADD COLUMN object_gone boolean NOT NULL DEFAULT false;
`,
	// 13: the collector's three kinds of rows each have an index, in
	// the order it takes them, instead of one for all rows at zero
	// references (which made it read every row waiting for its fence).
	`
DROP INDEX IF EXISTS bodies_released;
CREATE INDEX IF NOT EXISTS bodies_to_delete ON bodies(released) WHERE refs = 0 AND data IS NULL AND NOT object_gone;
CREATE INDEX IF NOT EXISTS bodies_held ON bodies(released) WHERE refs = 0 AND data IS NOT NULL;
CREATE INDEX IF NOT EXISTS bodies_gone ON bodies(delete_sent) WHERE refs = 0 AND data IS NULL AND object_gone;
`,
}

// schemaVersion is the version this code writes and understands.
var schemaVersion = len(migrations)

// errNewerSchema: the database was migrated by a newer tern.
var errNewerSchema = errors.New("the database has a newer schema than this tern knows; upgrade tern")

// migrationLock is the advisory lock key that serializes migrations of
// nodes starting at the same time ("tern" in ASCII).
const migrationLock = 0x7465726e

// migrate brings the schema up to schemaVersion, in one transaction under
// an advisory lock so that nodes starting together migrate once. It
// refuses a database whose schema is newer than this code.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate schema: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tern_schema(version integer NOT NULL)`); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	version := 0
	err = tx.QueryRow(ctx, `SELECT version FROM tern_schema`).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO tern_schema(version) VALUES(0)`); err != nil {
			return fmt.Errorf("migrate schema: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate schema: read version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("schema version %d, this tern knows up to %d: %w", version, schemaVersion, errNewerSchema)
	}
	if version == schemaVersion {
		return nil
	}
	for v := version; v < schemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE tern_schema SET version = $1`, schemaVersion); err != nil {
		return fmt.Errorf("migrate schema: record version: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

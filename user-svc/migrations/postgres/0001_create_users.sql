-- Users of the platform. Instants are microseconds since the Unix epoch.
-- Text columns that are sorted use the "C" collation, so PostgreSQL orders
-- them byte by byte, as SQLite does.
CREATE TABLE users (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    -- Lower-cased name, for case-insensitive search and ordering that sorts
    -- the same way on every database.
    name_folded TEXT COLLATE "C" NOT NULL,
    email       TEXT NOT NULL,
    -- Lower-cased email; its unique index makes addresses unique regardless of case.
    email_folded TEXT COLLATE "C" NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);

CREATE UNIQUE INDEX users_email_folded_key ON users (email_folded);
CREATE INDEX users_created_at_idx ON users (created_at, id);
CREATE INDEX users_name_folded_idx ON users (name_folded, id);

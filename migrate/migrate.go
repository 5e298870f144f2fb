package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

//go:embed sql/*.sql
var files embed.FS

// lockTimeout is how long Up waits, in seconds, for another process's run.
const lockTimeout = 30

// ErrLockTimeout means another process held the migration lock for longer
// than Up was willing to wait.
var ErrLockTimeout = errors.New("migrate: timed out waiting for the migration lock")

// Migration is one embedded schema change.
type Migration struct {
	Version int    // from the file name's numeric prefix, ≥ 1
	Name    string // the file name, for messages
	SQL     string // exactly one statement, without a trailing semicolon
}

// Migrations returns the embedded migrations in version order. It fails if a
// file is misnamed, a version repeats, or a file holds more than one
// statement.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(files, "sql")
	if err != nil {
		return nil, fmt.Errorf("migrate: read embedded migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migrate: migration %q is not named NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(prefix)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("migrate: migration %q has no positive version prefix", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrate: migrations %q and %q share version %d", other, name, v)
		}
		seen[v] = name
		raw, err := files.ReadFile(path.Join("sql", name))
		if err != nil {
			return nil, fmt.Errorf("migrate: read migration %q: %w", name, err)
		}
		stmt, err := statement(string(raw))
		if err != nil {
			return nil, fmt.Errorf("migrate: migration %q: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: stmt})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// statement strips whole-line "--" comments and one trailing semicolon, and
// refuses text that still holds a semicolon: one statement per file keeps
// splitting trivially safe.
func statement(raw string) (string, error) {
	var b strings.Builder
	for line := range strings.Lines(raw) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
	}
	s := strings.TrimSpace(b.String())
	s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
	if s == "" {
		return "", errors.New("no statement")
	}
	if strings.Contains(s, ";") {
		return "", errors.New("more than one statement (or a semicolon in the text); split it into files")
	}
	return s, nil
}

// EnsureDatabase creates the database named in dsn if it does not exist,
// connecting without selecting it. The character set is utf8mb4.
func EnsureDatabase(ctx context.Context, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("migrate: parse DSN: %w", err)
	}
	name := cfg.DBName
	if name == "" {
		return errors.New("migrate: DSN names no database")
	}
	cfg.DBName = ""
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("migrate: connector for database %q: %w", name, err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	q := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(name) +
		" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("migrate: create database %q: %w", name, err)
	}
	return nil
}

func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// lockName is the GET_LOCK name for a database; MySQL caps lock names at 64
// characters, so long database names are hashed.
func lockName(db string) string {
	name := db + ".migrate"
	if len(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(db))
	return "couponpush.migrate." + hex.EncodeToString(sum[:])[:40]
}

// Up applies every embedded migration the database lacks, in version order,
// and returns the versions it applied (none when the schema is current).
//
// The whole run holds GET_LOCK('<db>.migrate', 30) on one pinned
// connection, so concurrent callers against the same database apply each
// version exactly once; the others wait and then find nothing to do.
func Up(ctx context.Context, db *sql.DB) (applied []int, err error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: pin a connection: %w", err)
	}
	defer conn.Close()

	var dbName sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		return nil, fmt.Errorf("migrate: read current database: %w", err)
	}
	if !dbName.Valid || dbName.String == "" {
		return nil, errors.New("migrate: the connection has no database selected")
	}
	lock := lockName(dbName.String)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lock, lockTimeout).Scan(&got); err != nil {
		return nil, fmt.Errorf("migrate: take lock %q: %w", lock, err)
	}
	if !got.Valid {
		return nil, fmt.Errorf("migrate: take lock %q: server returned NULL", lock)
	}
	if got.Int64 != 1 {
		return nil, fmt.Errorf("%w %q", ErrLockTimeout, lock)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", lock); rerr != nil {
			// The lock dies with its session: drop the connection rather
			// than return it to the pool still holding the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = fmt.Errorf("migrate: release lock %q: %w", lock, rerr)
			}
		}
	}()

	const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INT         NOT NULL,
  applied_at DATETIME(3) NOT NULL,
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`
	if _, err := conn.ExecContext(ctx, createTable); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
			return applied, fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
		if _, err := conn.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, applied_at) VALUES (?, UTC_TIMESTAMP(3))", m.Version); err != nil {
			return applied, fmt.Errorf("migrate: record %s: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

func appliedVersions(ctx context.Context, conn *sql.Conn) (map[int]bool, error) {
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate: scan applied version: %w", err)
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	return done, nil
}

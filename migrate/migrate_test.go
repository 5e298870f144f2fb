package migrate

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open %q: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsEmbedded(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatalf("Migrations: %v", err)
	}
	if len(ms) < 2 {
		t.Fatalf("want at least 2 migrations, got %d", len(ms))
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d (%s) has version %d: versions must be 1..n without gaps", i, m.Name, m.Version)
		}
	}
}

func TestStatement(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "plain", in: "CREATE TABLE a (x INT)", want: "CREATE TABLE a (x INT)"},
		{name: "trailing semicolon and comments", in: "-- hello\nCREATE TABLE a (x INT);\n-- bye\n", want: "CREATE TABLE a (x INT)"},
		{name: "two statements", in: "CREATE TABLE a (x INT);\nCREATE TABLE b (y INT);", wantErr: true},
		{name: "only comments", in: "-- nothing\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statement(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("statement(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("statement(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLockName(t *testing.T) {
	tests := []struct {
		name string
		db   string
		want string
	}{
		{name: "short", db: "couponpush", want: "couponpush.migrate"},
		{name: "long is hashed to 64 or less", db: strings.Repeat("x", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lockName(tt.db)
			if len(got) > 64 {
				t.Fatalf("lockName(%q) = %q, longer than 64", tt.db, got)
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("lockName(%q) = %q, want %q", tt.db, got, tt.want)
			}
		})
	}
}

func allVersions(t *testing.T) []int {
	t.Helper()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.Version)
	}
	return vs
}

func TestUpTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t, newDSN(t))

	applied, err := Up(ctx, db)
	if err != nil {
		t.Fatalf("first Up: %v", err)
	}
	if want := allVersions(t); !slices.Equal(applied, want) {
		t.Fatalf("first Up applied %v, want %v", applied, want)
	}
	applied, err = Up(ctx, db)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Up applied %v, want nothing", applied)
	}
	for _, table := range []string{"templates", "subscriptions", "schema_migrations"} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
	var engine, collation string
	if err := db.QueryRowContext(ctx,
		"SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'subscriptions'").
		Scan(&engine, &collation); err != nil {
		t.Fatalf("read table info: %v", err)
	}
	if engine != "InnoDB" || !strings.HasPrefix(collation, "utf8mb4") {
		t.Fatalf("subscriptions is %s/%s, want InnoDB/utf8mb4", engine, collation)
	}
}

func TestUpConcurrentAppliesEachVersionOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := newDSN(t)
	const workers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []int
		errs    []error
	)
	for range workers {
		db := openDB(t, dsn) // one pool per simulated worker process
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := Up(ctx, db)
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, got...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("Up errors: %v", errs)
	}
	slices.Sort(applied)
	if want := allVersions(t); !slices.Equal(applied, want) {
		t.Fatalf("versions applied across %d workers = %v, want each of %v once", workers, applied, want)
	}
	var n int
	if err := openDB(t, dsn).QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(allVersions(t)) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(allVersions(t)))
	}
}

func TestEnsureDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := mysql.ParseDSN(newDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName += "_ensured"
	dsn := cfg.FormatDSN()
	t.Cleanup(func() {
		root := cfg.Clone()
		name := root.DBName
		root.DBName = ""
		db, err := sql.Open("mysql", root.FormatDSN())
		if err == nil {
			db.Exec("DROP DATABASE IF EXISTS " + quoteIdent(name))
			db.Close()
		}
	})

	for i := range 2 { // the second call finds it and changes nothing
		if err := EnsureDatabase(ctx, dsn); err != nil {
			t.Fatalf("EnsureDatabase call %d: %v", i+1, err)
		}
	}
	db := openDB(t, dsn)
	if _, err := Up(ctx, db); err != nil {
		t.Fatalf("Up on the ensured database: %v", err)
	}

	t.Run("dsn without database", func(t *testing.T) {
		c := cfg.Clone()
		c.DBName = ""
		if err := EnsureDatabase(ctx, c.FormatDSN()); err == nil {
			t.Fatal("want an error for a DSN without a database")
		}
	})
	t.Run("malformed dsn", func(t *testing.T) {
		if err := EnsureDatabase(ctx, "not a dsn"); err == nil {
			t.Fatal("want an error for a malformed DSN")
		}
	})
}

// TestTemplatesPriority: 0009 adds templates.priority; a template stored
// before it reads as normal, and the column takes only the three values.
func TestTemplatesPriority(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t, newDSN(t))
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	// The schema as it was before 0009, recorded as applied, with a row.
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INT NOT NULL, applied_at DATETIME(3) NOT NULL, PRIMARY KEY (version))`); err != nil {
		t.Fatal(err)
	}
	const before = 9
	for _, m := range ms {
		if m.Version >= before {
			break
		}
		if _, err := db.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("apply %s: %v", m.Name, err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO schema_migrations VALUES (?, UTC_TIMESTAMP(3))", m.Version); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO templates (name, type, value, stock, grab_start, grab_end, valid_days, created_at, updated_at)
VALUES ('old', 'fixed', 100, 10, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL 1 HOUR, 7, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))`); err != nil {
		t.Fatalf("insert a template before 0009: %v", err)
	}
	applied, err := Up(ctx, db)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(applied) == 0 || applied[0] != before {
		t.Fatalf("Up applied %v, want it to start at %d", applied, before)
	}
	var got string
	if err := db.QueryRowContext(ctx, "SELECT priority FROM templates WHERE name = 'old'").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "normal" {
		t.Fatalf("an old template's priority = %q, want normal", got)
	}
	for _, tc := range []struct {
		name  string
		value string
		ok    bool
	}{{"high", "high", true}, {"low", "low", true}, {"unknown", "urgent", false}, {"empty", "", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, "UPDATE templates SET priority = ? WHERE name = 'old'", tc.value)
			if (err == nil) != tc.ok {
				t.Fatalf("set priority %q: err = %v, want accepted %v", tc.value, err, tc.ok)
			}
		})
	}
}

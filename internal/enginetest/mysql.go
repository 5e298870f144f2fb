package enginetest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

var sharedMySQL once[string]

// MySQL returns a DSN (parseTime=true, loc=UTC, multiStatements=false) for a
// fresh empty database created for this test on the shared MariaDB
// (COUPONPUSH_MYSQL_DSN, a go-sql-driver DSN without a database, or a server
// started once per test binary); the database is dropped at t.Cleanup. The
// database is named after Prefix(t); a second call in the same test makes
// another database.
func MySQL(t testing.TB) string {
	t.Helper()
	base, err := mysqlBase(t)
	if err != nil {
		t.Fatal(err)
	}
	return database(t, base, true)
}

// StartMySQL starts a MariaDB server for this test only (durable commits,
// a data directory of its own on disk, a free loopback port), stopped and
// removed at t.Cleanup, for tests that freeze, stop or restart MySQL. It
// returns the process and the DSN of a fresh empty database on it, in
// MySQL's form. It never uses COUPONPUSH_MYSQL_DSN, so it works the same
// under `make test`.
func StartMySQL(t testing.TB) (*Process, string) {
	t.Helper()
	p := startPerTest(t, "mariadb", mariadbProcess)
	// No drop at cleanup: the data directory goes with the server, and a
	// server the test left frozen would only make a drop wait.
	return p, database(t, "root@tcp("+p.Addr+")/", false)
}

// database creates a fresh database named after Prefix(t) on the server of
// DSN base (which names no database) and returns its DSN; with drop, it is
// dropped at t.Cleanup.
func database(t testing.TB, base string, drop bool) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("enginetest: parsing the MySQL DSN %q: %v", base, err)
	}
	p := prefixOf(t)
	prefixes.Lock()
	p.dbs++
	name := p.name
	if p.dbs > 1 {
		name += "_" + strconv.Itoa(p.dbs)
	}
	prefixes.Unlock()

	admin := cfg.Clone()
	admin.DBName = ""
	if err := mysqlExec(admin, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("enginetest: creating database %s on %s: %v", name, admin.Addr, err)
	}
	if drop {
		t.Cleanup(func() {
			if err := mysqlExec(admin, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
				t.Errorf("enginetest: dropping database %s on %s: %v", name, admin.Addr, err)
			}
		})
	}
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.MultiStatements = false
	return cfg.FormatDSN()
}

// mysqlExec runs one statement on a connection of its own.
func mysqlExec(cfg *mysql.Config, stmt string) error {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// mysqlBase returns the DSN of the shared server, without a database.
func mysqlBase(t testing.TB) (string, error) {
	t.Helper()
	if dsn := os.Getenv("COUPONPUSH_MYSQL_DSN"); dsn != "" {
		return dsn, nil
	}
	return sharedMySQL.get(func() (string, error) {
		p, err := startShared(t, "mariadb", mariadbProcess)
		if err != nil {
			return "", err
		}
		return "root@tcp(" + p.Addr + ")/", nil
	})
}

// mariadbProcess starts mariadbd in dir, on a copy of the cached template
// data directory, with durable commits.
func mariadbProcess(dir string) (*Process, error) {
	path, err := binPath("mariadbd")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "mysql")); errors.Is(err, fs.ErrNotExist) {
		tmpl, err := mariadbTemplate(path)
		if err != nil {
			return nil, err
		}
		if err := copyTree(tmpl, data); err != nil {
			return nil, fmt.Errorf("enginetest: copying the MariaDB template %s: %w", tmpl, err)
		}
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "sock")
	if len(sock) >= 100 { // sun_path is 108 bytes
		sock = filepath.Join(os.TempDir(), "couponpush-mariadb-"+strconv.Itoa(ports[0])+".sock")
	}
	args := []string{
		"--no-defaults", // never read /etc/mysql
		"--datadir=" + data, "--socket=" + sock, "--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--port=" + strconv.Itoa(ports[0]), "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--innodb-flush-log-at-trx-commit=1", "--max-connections=1000", "--skip-log-bin",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
		"--default-time-zone=+00:00",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	addr := loopback(ports[0])
	p := &Process{
		Name:         "mariadbd",
		Addr:         addr,
		Dir:          dir,
		LogPath:      filepath.Join(dir, "mariadbd.log"),
		path:         path,
		args:         args,
		ready:        func(ctx context.Context) error { return mysqlPing(ctx, addr) },
		readyTimeout: 60 * time.Second,
	}
	return p, p.start()
}

// mysqlPing connects as root without a password: a completed handshake
// means the server takes clients.
func mysqlPing(ctx context.Context, addr string) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", addr
	cfg.Timeout = 2 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	c, err := conn.Connect(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}

// mariadbTemplate returns a data directory made by mariadb-install-db
// (root@localhost and root@127.0.0.1 with no password), made once per
// machine and MariaDB version in the cache, since install takes seconds and
// a copy a fraction of one. Its path is keyed by `mariadbd --version`.
func mariadbTemplate(mariadbd string) (string, error) {
	out, err := exec.Command(mariadbd, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("enginetest: %s --version: %w", mariadbd, err)
	}
	sum := sha256.Sum256(append([]byte(mariadbd+"\n"), out...))
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("enginetest: finding the cache for the MariaDB template: %w", err)
	}
	root := filepath.Join(cache, "couponpush", "mariadb-template")
	final := filepath.Join(root, hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(final, "data", "mysql")); err == nil {
		return filepath.Join(final, "data"), nil
	}
	install, err := binPath("mariadb-install-db")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("enginetest: making %s: %w", root, err)
	}
	tmp, err := os.MkdirTemp(root, "tmp-")
	if err != nil {
		return "", fmt.Errorf("enginetest: making a MariaDB template directory: %w", err)
	}
	defer os.RemoveAll(tmp) // empty after a successful rename
	args := []string{
		"--no-defaults", "--datadir=" + filepath.Join(tmp, "data"),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(install, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("enginetest: %s %v: %w\n%s", install, args, err, out)
	}
	// Another test binary may have won the race; either copy is good.
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, "data", "mysql")); serr != nil {
			return "", fmt.Errorf("enginetest: storing the MariaDB template: %w", err)
		}
	}
	return filepath.Join(final, "data"), nil
}

// copyTree copies the directory src to dst, which must not exist.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Mkdir(target, info.Mode().Perm()|0o700)
		}
		if !info.Mode().IsRegular() {
			return nil // sockets, pid files of a live server: not data
		}
		return copyFile(path, target, info.Mode().Perm())
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range on Linux
		_ = out.Close()
		return err
	}
	return out.Close()
}

package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"couponpush/config"
	"couponpush/internal/enginetest"
)

func TestMySQLDSN(t *testing.T) {
	certs := enginetest.TLSCerts(t)
	tests := []struct {
		name          string
		dsn           string
		e             config.Engines
		dial, read    time.Duration
		passwd        string
		tlsServerName string // "" means no TLS
	}{
		{"defaults added", "u:p@tcp(db:3306)/x", config.Engines{}, MySQLDialTimeout, MySQLReadTimeout, "p", ""},
		{"operator's kept", "u:p@tcp(db:3306)/x?timeout=1s&readTimeout=2m", config.Engines{}, time.Second, 2 * time.Minute, "p", ""},
		{"password replaced", "u:p@tcp(db:3306)/x", config.Engines{MySQLPassword: "other"}, MySQLDialTimeout, MySQLReadTimeout, "other", ""},
		{"custom CA", "u@tcp(db.internal:3306)/x", config.Engines{MySQLTLSCAFile: certs.CA}, MySQLDialTimeout, MySQLReadTimeout, "", "db.internal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn, err := MySQLDSN(tc.dsn, tc.e)
			if err != nil {
				t.Fatal(err)
			}
			c, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatalf("%s: %v", config.RedactDSN(dsn), err)
			}
			if c.Timeout != tc.dial || c.ReadTimeout != tc.read || c.WriteTimeout == 0 || c.Passwd != tc.passwd {
				t.Errorf("%s: timeout %v read %v write %v", config.RedactDSN(dsn), c.Timeout, c.ReadTimeout, c.WriteTimeout)
			}
			switch {
			case tc.tlsServerName == "" && c.TLS != nil:
				t.Errorf("TLS on: %s", config.RedactDSN(dsn))
			case tc.tlsServerName != "" && (c.TLS == nil || c.TLS.RootCAs == nil || c.TLS.ServerName != tc.tlsServerName):
				t.Errorf("TLS %+v, want the custom CA for %s", c.TLS, tc.tlsServerName)
			}
		})
	}
}

func TestRedisOptionsBounded(t *testing.T) {
	certs := enginetest.TLSCerts(t)
	o, err := RedisOptions([]string{"r:6379"}, config.Engines{RedisUsername: "app", RedisPassword: "pw", RedisTLSCAFile: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	if o.DialTimeout <= 0 || o.ReadTimeout <= 0 || o.WriteTimeout <= 0 || o.PoolTimeout <= 0 || !o.ContextTimeoutEnabled {
		t.Errorf("unbounded: %+v", o)
	}
	if o.Username != "app" || o.Password != "pw" || o.TLSConfig == nil || o.TLSConfig.RootCAs == nil {
		t.Errorf("credentials or TLS missing: user %q tls %v", o.Username, o.TLSConfig)
	}
	if _, err := RedisOptions(nil, config.Engines{RedisTLSCAFile: "/no/such"}); err == nil || !strings.Contains(err.Error(), "redis tls") {
		t.Errorf("missing CA: %v", err)
	}
}

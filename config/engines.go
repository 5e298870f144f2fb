package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Engines are the credentials and TLS settings of the connections to
// Redis, MySQL, nsqd and Consul. Worker embeds it (its JSON keys sit at
// the top level of the config file); cmd/scheduler-admin and cmd/consumer
// read the same flags and environment variables with EngineFlags. Every
// field is optional: zero means a plain connection without credentials
// (beyond what the addresses and the MySQL DSN carry).
//
// Each secret can instead be given as a file (its _file field, flag
// -..-file, environment ..._FILE), so it stays out of ps and of the
// environment; one trailing newline is dropped. Secrets never show when a
// config is printed or logged (see Secret).
type Engines struct {
	// RedisUsername is the Redis ACL user (AUTH username password). Empty
	// means the default user.
	RedisUsername string `json:"redis_username"`
	// RedisPassword is the Redis password (requirepass or the ACL user's).
	RedisPassword Secret `json:"redis_password"`
	// RedisPasswordFile is a file holding RedisPassword.
	RedisPasswordFile string `json:"redis_password_file"`
	// RedisTLS connects to Redis over TLS, verified against the system
	// roots unless RedisTLSCAFile is set (which implies TLS).
	RedisTLS bool `json:"redis_tls"`
	// RedisTLSCAFile is a PEM file of the CAs that sign Redis's certificate.
	RedisTLSCAFile string `json:"redis_tls_ca_file"`
	// RedisTLSCertFile and RedisTLSKeyFile are a PEM client certificate
	// and its key, for a Redis that asks for one (tls-auth-clients).
	RedisTLSCertFile string `json:"redis_tls_cert_file"`
	// RedisTLSKeyFile is the key of RedisTLSCertFile.
	RedisTLSKeyFile string `json:"redis_tls_key_file"`
	// RedisTLSServerName is the name Redis's certificate must carry.
	// Empty means the host of each address.
	RedisTLSServerName string `json:"redis_tls_server_name"`

	// MySQLPassword, when set, replaces the password of the MySQL DSN, so
	// the DSN can be given without it.
	MySQLPassword Secret `json:"mysql_password"`
	// MySQLPasswordFile is a file holding MySQLPassword.
	MySQLPasswordFile string `json:"mysql_password_file"`
	// MySQLTLSCAFile is a PEM file of the CAs that sign the MySQL server's
	// certificate; it turns TLS on (the DSN's tls= parameter, for the
	// system roots, must then be unset).
	MySQLTLSCAFile string `json:"mysql_tls_ca_file"`
	// MySQLTLSCertFile is a PEM client certificate for MySQL (with
	// MySQLTLSKeyFile), for an account that REQUIREs X509.
	MySQLTLSCertFile string `json:"mysql_tls_cert_file"`
	// MySQLTLSKeyFile is the key of MySQLTLSCertFile.
	MySQLTLSKeyFile string `json:"mysql_tls_key_file"`
	// MySQLTLSServerName is the name the MySQL certificate must carry.
	// Empty means the DSN's host.
	MySQLTLSServerName string `json:"mysql_tls_server_name"`

	// NSQDTLS connects to nsqd over TLS (nsqd --tls-cert/--tls-key),
	// verified against the system roots unless NSQDTLSCAFile is set (which
	// implies TLS).
	NSQDTLS bool `json:"nsqd_tls"`
	// NSQDTLSCAFile is a PEM file of the CAs that sign nsqd's certificate.
	NSQDTLSCAFile string `json:"nsqd_tls_ca_file"`
	// NSQDTLSCertFile is a PEM client certificate for nsqd (with
	// NSQDTLSKeyFile), for an nsqd with --tls-client-auth-policy.
	NSQDTLSCertFile string `json:"nsqd_tls_cert_file"`
	// NSQDTLSKeyFile is the key of NSQDTLSCertFile.
	NSQDTLSKeyFile string `json:"nsqd_tls_key_file"`
	// NSQDTLSServerName is the name nsqd's certificate must carry. Empty
	// means the host of the address.
	NSQDTLSServerName string `json:"nsqd_tls_server_name"`
	// NSQDAuthSecret is sent to an nsqd run with --auth-http-address
	// (AUTH); it needs TLS unless the auth server allows plain text.
	NSQDAuthSecret Secret `json:"nsqd_auth_secret"`
	// NSQDAuthSecretFile is a file holding NSQDAuthSecret.
	NSQDAuthSecretFile string `json:"nsqd_auth_secret_file"`

	// ConsulToken is the Consul ACL token. Empty means CONSUL_HTTP_TOKEN
	// (or CONSUL_HTTP_TOKEN_FILE), else the agent's default token.
	ConsulToken Secret `json:"consul_token"`
	// ConsulTokenFile is a file holding ConsulToken.
	ConsulTokenFile string `json:"consul_token_file"`
	// ConsulTLSCAFile is a PEM file of the CAs that sign the Consul agent's
	// certificate; it implies https.
	ConsulTLSCAFile string `json:"consul_tls_ca_file"`
	// ConsulTLSCertFile is a PEM client certificate for Consul (with
	// ConsulTLSKeyFile), for an agent with verify_incoming.
	ConsulTLSCertFile string `json:"consul_tls_cert_file"`
	// ConsulTLSKeyFile is the key of ConsulTLSCertFile.
	ConsulTLSKeyFile string `json:"consul_tls_key_file"`
	// ConsulTLSServerName is the name the agent's certificate must carry.
	// Empty means the host of the address.
	ConsulTLSServerName string `json:"consul_tls_server_name"`
}

// Secret is a password, token or auth secret. It prints and logs as
// "[redacted]" (or "" when empty); Reveal gives the value. JSON encoding
// keeps it, so a config written out reads back the same: never log a
// json.Marshal of a config.
type Secret string

// redacted is what a non-empty Secret shows.
const redacted = "[redacted]"

// Reveal returns the secret itself, for the client that sends it.
func (s Secret) Reveal() string { return string(s) }

// String hides the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// LogValue hides the secret from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// engineFields are the flags and environment variables of Engines; they
// join the worker's fields table (see init) and EngineFlags.
var engineFields = []field{
	{"redis-username", "REDIS_USERNAME", "Redis ACL user name", func(w *Worker) any { return &w.RedisUsername }},
	{"redis-password", "REDIS_PASSWORD", "Redis password (prefer -redis-password-file)", func(w *Worker) any { return &w.RedisPassword }},
	{"redis-password-file", "REDIS_PASSWORD_FILE", "file holding the Redis password", func(w *Worker) any { return &w.RedisPasswordFile }},
	{"redis-tls", "REDIS_TLS", "connect to Redis over TLS (implied by -redis-tls-ca-file)", func(w *Worker) any { return &w.RedisTLS }},
	{"redis-tls-ca-file", "REDIS_TLS_CA_FILE", "PEM CAs that sign Redis's certificate", func(w *Worker) any { return &w.RedisTLSCAFile }},
	{"redis-tls-cert-file", "REDIS_TLS_CERT_FILE", "PEM client certificate for Redis", func(w *Worker) any { return &w.RedisTLSCertFile }},
	{"redis-tls-key-file", "REDIS_TLS_KEY_FILE", "key of the Redis client certificate", func(w *Worker) any { return &w.RedisTLSKeyFile }},
	{"redis-tls-server-name", "REDIS_TLS_SERVER_NAME", "name Redis's certificate must carry (default: the address's host)", func(w *Worker) any { return &w.RedisTLSServerName }},
	{"mysql-password", "MYSQL_PASSWORD", "MySQL password, replacing the DSN's (prefer -mysql-password-file)", func(w *Worker) any { return &w.MySQLPassword }},
	{"mysql-password-file", "MYSQL_PASSWORD_FILE", "file holding the MySQL password", func(w *Worker) any { return &w.MySQLPasswordFile }},
	{"mysql-tls-ca-file", "MYSQL_TLS_CA_FILE", "PEM CAs that sign MySQL's certificate (turns TLS on)", func(w *Worker) any { return &w.MySQLTLSCAFile }},
	{"mysql-tls-cert-file", "MYSQL_TLS_CERT_FILE", "PEM client certificate for MySQL", func(w *Worker) any { return &w.MySQLTLSCertFile }},
	{"mysql-tls-key-file", "MYSQL_TLS_KEY_FILE", "key of the MySQL client certificate", func(w *Worker) any { return &w.MySQLTLSKeyFile }},
	{"mysql-tls-server-name", "MYSQL_TLS_SERVER_NAME", "name MySQL's certificate must carry (default: the DSN's host)", func(w *Worker) any { return &w.MySQLTLSServerName }},
	{"nsqd-tls", "NSQD_TLS", "connect to nsqd over TLS (implied by -nsqd-tls-ca-file)", func(w *Worker) any { return &w.NSQDTLS }},
	{"nsqd-tls-ca-file", "NSQD_TLS_CA_FILE", "PEM CAs that sign nsqd's certificate", func(w *Worker) any { return &w.NSQDTLSCAFile }},
	{"nsqd-tls-cert-file", "NSQD_TLS_CERT_FILE", "PEM client certificate for nsqd", func(w *Worker) any { return &w.NSQDTLSCertFile }},
	{"nsqd-tls-key-file", "NSQD_TLS_KEY_FILE", "key of the nsqd client certificate", func(w *Worker) any { return &w.NSQDTLSKeyFile }},
	{"nsqd-tls-server-name", "NSQD_TLS_SERVER_NAME", "name nsqd's certificate must carry (default: the address's host)", func(w *Worker) any { return &w.NSQDTLSServerName }},
	{"nsqd-auth-secret", "NSQD_AUTH_SECRET", "secret for an nsqd with --auth-http-address (prefer -nsqd-auth-secret-file)", func(w *Worker) any { return &w.NSQDAuthSecret }},
	{"nsqd-auth-secret-file", "NSQD_AUTH_SECRET_FILE", "file holding the nsqd auth secret", func(w *Worker) any { return &w.NSQDAuthSecretFile }},
	{"consul-token", "CONSUL_TOKEN", "Consul ACL token (prefer -consul-token-file)", func(w *Worker) any { return &w.ConsulToken }},
	{"consul-token-file", "CONSUL_TOKEN_FILE", "file holding the Consul ACL token", func(w *Worker) any { return &w.ConsulTokenFile }},
	{"consul-tls-ca-file", "CONSUL_TLS_CA_FILE", "PEM CAs that sign the Consul agent's certificate (implies https)", func(w *Worker) any { return &w.ConsulTLSCAFile }},
	{"consul-tls-cert-file", "CONSUL_TLS_CERT_FILE", "PEM client certificate for Consul", func(w *Worker) any { return &w.ConsulTLSCertFile }},
	{"consul-tls-key-file", "CONSUL_TLS_KEY_FILE", "key of the Consul client certificate", func(w *Worker) any { return &w.ConsulTLSKeyFile }},
	{"consul-tls-server-name", "CONSUL_TLS_SERVER_NAME", "name the Consul agent's certificate must carry", func(w *Worker) any { return &w.ConsulTLSServerName }},
}

func init() { fields = append(fields, engineFields...) }

// secrets pairs each secret with its file field and its JSON name.
func (e *Engines) secrets() []struct {
	name   string
	secret *Secret
	file   *string
} {
	return []struct {
		name   string
		secret *Secret
		file   *string
	}{
		{"redis_password", &e.RedisPassword, &e.RedisPasswordFile},
		{"mysql_password", &e.MySQLPassword, &e.MySQLPasswordFile},
		{"nsqd_auth_secret", &e.NSQDAuthSecret, &e.NSQDAuthSecretFile},
		{"consul_token", &e.ConsulToken, &e.ConsulTokenFile},
	}
}

// ReadSecretFiles reads every secret given as a file into its field. A
// secret given both ways, an unreadable file or an empty one is an error;
// the errors name the file, never its content.
func (e *Engines) ReadSecretFiles() error {
	var errs []error
	for _, s := range e.secrets() {
		if *s.file == "" {
			continue
		}
		if *s.secret != "" {
			errs = append(errs, fmt.Errorf("%s: set %s or %s_file, not both", s.name, s.name, s.name))
			continue
		}
		data, err := os.ReadFile(*s.file)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s_file: %w", s.name, err))
			continue
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		if v == "" {
			errs = append(errs, fmt.Errorf("%s_file: %s is empty", s.name, *s.file))
			continue
		}
		*s.secret = Secret(v)
	}
	return errors.Join(errs...)
}

// TLSFiles name the PEM files and server name of one TLS client.
type TLSFiles struct {
	CAFile, CertFile, KeyFile, ServerName string
}

// Config builds the tls.Config (TLS 1.2 or later): the CAs of CAFile, or
// the system roots when it is empty; the client certificate when CertFile
// and KeyFile are set.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca file %s holds no PEM certificate", f.CAFile)
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("tls client certificate and key go together: set both or neither")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// RedisTLSConfig is the TLS config for Redis, nil for a plain connection.
func (e Engines) RedisTLSConfig() (*tls.Config, error) {
	if !e.RedisTLS && e.RedisTLSCAFile == "" {
		return nil, nil
	}
	return TLSFiles{e.RedisTLSCAFile, e.RedisTLSCertFile, e.RedisTLSKeyFile, e.RedisTLSServerName}.Config()
}

// MySQLTLSConfig is the TLS config for MySQL, nil unless MySQLTLSCAFile
// is set (the DSN's tls= parameter covers the system roots).
func (e Engines) MySQLTLSConfig() (*tls.Config, error) {
	if e.MySQLTLSCAFile == "" {
		return nil, nil
	}
	return TLSFiles{e.MySQLTLSCAFile, e.MySQLTLSCertFile, e.MySQLTLSKeyFile, e.MySQLTLSServerName}.Config()
}

// NSQDTLSConfig is the TLS config for nsqd, nil for a plain connection.
func (e Engines) NSQDTLSConfig() (*tls.Config, error) {
	if !e.NSQDTLS && e.NSQDTLSCAFile == "" {
		return nil, nil
	}
	return TLSFiles{e.NSQDTLSCAFile, e.NSQDTLSCertFile, e.NSQDTLSKeyFile, e.NSQDTLSServerName}.Config()
}

// validate reports the problems of e through bad, naming JSON fields. It
// loads the TLS files, so a bad path or PEM stops a process at start-up.
func (e Engines) validate(bad func(field, format string, args ...any), mysqlDSN string) {
	check := func(field string, build func() (*tls.Config, error)) {
		if _, err := build(); err != nil {
			bad(field, "%v", err)
		}
	}
	check("redis_tls", e.RedisTLSConfig)
	check("mysql_tls", e.MySQLTLSConfig)
	check("nsqd_tls", e.NSQDTLSConfig)
	check("consul_tls", TLSFiles{e.ConsulTLSCAFile, e.ConsulTLSCertFile, e.ConsulTLSKeyFile, e.ConsulTLSServerName}.Config)
	if !e.RedisTLS && e.RedisTLSCAFile == "" && (e.RedisTLSCertFile != "" || e.RedisTLSKeyFile != "" || e.RedisTLSServerName != "") {
		bad("redis_tls", "a Redis client certificate or server name needs redis_tls or redis_tls_ca_file")
	}
	if e.MySQLTLSCAFile == "" && (e.MySQLTLSCertFile != "" || e.MySQLTLSKeyFile != "" || e.MySQLTLSServerName != "") {
		bad("mysql_tls_ca_file", "a MySQL client certificate or server name needs mysql_tls_ca_file")
	}
	if !e.NSQDTLS && e.NSQDTLSCAFile == "" && (e.NSQDTLSCertFile != "" || e.NSQDTLSKeyFile != "" || e.NSQDTLSServerName != "") {
		bad("nsqd_tls", "an nsqd client certificate or server name needs nsqd_tls or nsqd_tls_ca_file")
	}
	if e.MySQLTLSCAFile != "" && mysqlDSN != "" {
		if c, err := mysql.ParseDSN(mysqlDSN); err == nil && c.TLS != nil {
			bad("mysql_tls_ca_file", "the MySQL DSN already has a tls= parameter: use one or the other")
		}
	}
}

// RedactDSN returns dsn with its password replaced by [redacted], for
// logs and errors; a DSN that does not parse is replaced whole.
func RedactDSN(dsn string) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "[unparsable DSN, redacted]"
	}
	if c.Passwd != "" {
		c.Passwd = redacted
	}
	return c.FormatDSN()
}

// String prints w with every secret redacted, the MySQL DSN's password
// included, so a config can be logged or shown in a test failure.
func (w Worker) String() string { return fmt.Sprintf("%+v", w.redacted()) }

// GoString is String for %#v.
func (w Worker) GoString() string { return fmt.Sprintf("%#v", w.redacted()) }

// LogValue logs w as String does, with every secret redacted, whatever
// the handler.
func (w Worker) LogValue() slog.Value { return slog.StringValue(w.String()) }

// plainWorker is Worker without its methods, so printing it does not
// recurse into String.
type plainWorker Worker

// redacted is w with the DSN's password hidden (the Secret fields hide
// themselves).
func (w Worker) redacted() plainWorker {
	if w.MySQLDSN != "" {
		w.MySQLDSN = RedactDSN(w.MySQLDSN)
	}
	return plainWorker(w)
}

// Engine names for EngineFlags.
const (
	EngineRedis  = "redis"
	EngineMySQL  = "mysql"
	EngineNSQD   = "nsqd"
	EngineConsul = "consul"
)

// EngineFlags registers on fs the Engines flags of the engines named (the
// flags of the worker, such as -redis-password-file), for the commands
// that talk to the same engines as the worker. After fs.Parse, the
// returned load applies the environment (read through getenv; nil means
// os.Getenv) and then the flags, reads the secret files and checks the
// result. The flags' usage lines name their environment variables.
func EngineFlags(fs *flag.FlagSet, getenv func(string) string, engines ...string) (load func() (Engines, error)) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var mine []field
	for _, f := range engineFields {
		for _, e := range engines {
			if strings.HasPrefix(f.flag, e+"-") {
				mine = append(mine, f)
			}
		}
	}
	var scratch Worker
	raw := map[string]string{}
	for _, f := range mine {
		f.register(fs, f.usage+" (env "+EnvPrefix+f.env+")", func(s string) error {
			raw[f.flag] = s
			return f.set(&scratch, s)
		})
	}
	return func() (Engines, error) {
		var w Worker
		for _, f := range mine {
			if v := getenv(EnvPrefix + f.env); v != "" {
				if err := f.set(&w, v); err != nil {
					return Engines{}, fmt.Errorf("environment %s%s: %w", EnvPrefix, f.env, err)
				}
			}
		}
		for _, f := range mine {
			if v, ok := raw[f.flag]; ok {
				_ = f.set(&w, v) // parsed once already into scratch
			}
		}
		if err := w.ReadSecretFiles(); err != nil {
			return Engines{}, err
		}
		var errs []error
		w.Engines.validate(func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
		}, "")
		return w.Engines, errors.Join(errs...)
	}
}

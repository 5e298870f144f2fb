// Package engine turns config.Engines into client settings for Redis,
// MySQL, nsqd and Consul, with the time limits every engine call runs
// under, for the worker and the commands that talk to the same engines.
// It connects to nothing.
package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"couponpush/cluster"
	"couponpush/config"
	"couponpush/push"
)

// Time limits of the Redis client. A request's context deadline bounds a
// call further (ContextTimeoutEnabled).
const (
	RedisDialTimeout  = 5 * time.Second
	RedisReadTimeout  = 3 * time.Second // one reply; the longest script (a 5000-user pop) takes far less
	RedisWriteTimeout = 3 * time.Second
	RedisPoolTimeout  = 4 * time.Second // waiting for a free connection of the pool
)

// Time limits added to a MySQL DSN that does not set them (timeout,
// readTimeout, writeTimeout). The read limit is a backstop for a server
// that stopped answering: it must exceed the longest statement (a lock
// wait is up to innodb_lock_wait_timeout, 50s by default), and contexts
// bound requests far below it.
const (
	MySQLDialTimeout  = 5 * time.Second
	MySQLReadTimeout  = 60 * time.Second
	MySQLWriteTimeout = 30 * time.Second
)

// RedisOptions returns the go-redis options for addrs (one address: a
// standalone server; several: Redis Cluster seeds) with e's credentials
// and TLS, and every time limit set.
func RedisOptions(addrs []string, e config.Engines) (*redis.UniversalOptions, error) {
	tlsCfg, err := e.RedisTLSConfig()
	if err != nil {
		return nil, fmt.Errorf("redis tls: %w", err)
	}
	return &redis.UniversalOptions{
		Addrs:                 addrs,
		Username:              e.RedisUsername,
		Password:              e.RedisPassword.Reveal(),
		TLSConfig:             tlsCfg,
		DialTimeout:           RedisDialTimeout,
		ReadTimeout:           RedisReadTimeout,
		WriteTimeout:          RedisWriteTimeout,
		PoolTimeout:           RedisPoolTimeout,
		ContextTimeoutEnabled: true,
	}, nil
}

// MySQLDSN returns dsn with e's password (when set), TLS with a custom CA
// (when set: registered with the driver under a name derived from the
// files) and the time limits above where dsn sets none. The result holds
// the password: print it only through config.RedactDSN.
func MySQLDSN(dsn string, e config.Engines) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("mysql dsn: %w", err)
	}
	if e.MySQLPassword != "" {
		c.Passwd = e.MySQLPassword.Reveal()
	}
	if c.Timeout == 0 {
		c.Timeout = MySQLDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = MySQLReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = MySQLWriteTimeout
	}
	tlsCfg, err := e.MySQLTLSConfig()
	if err != nil {
		return "", fmt.Errorf("mysql tls: %w", err)
	}
	if tlsCfg != nil {
		sum := sha256.Sum256([]byte(e.MySQLTLSCAFile + "\x00" + e.MySQLTLSCertFile + "\x00" + e.MySQLTLSKeyFile + "\x00" + e.MySQLTLSServerName))
		name := "couponpush-" + hex.EncodeToString(sum[:8])
		if err := mysql.RegisterTLSConfig(name, tlsCfg); err != nil {
			return "", fmt.Errorf("mysql tls: %w", err)
		}
		c.TLS, c.TLSConfig = nil, name
	}
	return c.FormatDSN(), nil
}

// ConsulAuth returns the ACL token and TLS files for cluster.Config.Auth.
func ConsulAuth(e config.Engines) cluster.Auth {
	return cluster.Auth{
		Token:      e.ConsulToken.Reveal(),
		CAFile:     e.ConsulTLSCAFile,
		CertFile:   e.ConsulTLSCertFile,
		KeyFile:    e.ConsulTLSKeyFile,
		ServerName: e.ConsulTLSServerName,
	}
}

// NSQ returns the TLS and auth settings for push.PublisherConfig and
// push.ConsumerConfig.
func NSQ(e config.Engines) (push.NSQAuth, error) {
	tlsCfg, err := e.NSQDTLSConfig()
	if err != nil {
		return push.NSQAuth{}, fmt.Errorf("nsqd tls: %w", err)
	}
	return push.NSQAuth{TLS: tlsCfg, AuthSecret: e.NSQDAuthSecret.Reveal()}, nil
}

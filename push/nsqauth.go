package push

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/nsqio/go-nsq"
)

// Time limits of the connections to nsqd. nsqd sends a heartbeat every
// 30s (its default --max-heartbeat-interval is 60s), so the read limit
// only fires on a connection that went silent.
const (
	nsqDialTimeout  = 2 * time.Second
	nsqReadTimeout  = 60 * time.Second
	nsqWriteTimeout = 5 * time.Second
)

// NSQAuth is how a connection to nsqd is secured: TLS (negotiated in
// IDENTIFY, for an nsqd run with --tls-cert and --tls-key) and the secret
// sent to an nsqd run with --auth-http-address.
type NSQAuth struct {
	// TLS, when set, upgrades the connection to TLS with this config; an
	// empty ServerName means the host of the address.
	TLS *tls.Config
	// AuthSecret is sent with AUTH when nsqd asks for it.
	AuthSecret string
}

// apply sets a's settings on nc for a connection to addr.
func (a NSQAuth) apply(nc *nsq.Config, addr string) {
	if a.TLS != nil {
		t := a.TLS.Clone()
		if t.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				t.ServerName = host
			}
		}
		nc.TlsV1, nc.TlsConfig = true, t
	}
	nc.AuthSecret = a.AuthSecret
}

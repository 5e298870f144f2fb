package cluster

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAuthReachesConsul: the ACL token goes with every call, and a CA file
// makes the client speak https and verify the agent against that CA.
func TestAuthReachesConsul(t *testing.T) {
	var token atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token.Store(r.Header.Get("X-Consul-Token"))
		_, _ = w.Write([]byte(`"127.0.0.1:8300"`))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := New(Config{Addr: addr, Auth: Auth{Token: "acl-token-1", CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping over TLS: %v", err)
	}
	if got := token.Load(); got != "acl-token-1" {
		t.Errorf("X-Consul-Token = %v, want acl-token-1", got)
	}

	// Without the CA the agent's certificate is refused.
	plain, err := New(Config{Addr: "https://" + addr, Auth: Auth{Token: "acl-token-1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Ping(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("ping without the CA: %v, want a certificate error", err)
	}
}

// TestClientTimeoutsCoverBlockingQueries: every call is bounded, and the
// bound leaves a blocking query its whole wait plus Consul's jitter.
func TestClientTimeoutsCoverBlockingQueries(t *testing.T) {
	c, err := New(Config{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := c.transport
	if tr.ResponseHeaderTimeout <= MaxBlockingWait+MaxBlockingWait/16 {
		t.Errorf("answer timeout %v does not cover a blocking wait of %v plus jitter", tr.ResponseHeaderTimeout, MaxBlockingWait)
	}
	if tr.TLSHandshakeTimeout <= 0 || tr.DialContext == nil {
		t.Errorf("unbounded dial or handshake: %+v", tr)
	}
	if watchWait > MaxBlockingWait || lockWaitTime > MaxBlockingWait {
		t.Errorf("blocking waits %v, %v exceed MaxBlockingWait %v", watchWait, lockWaitTime, MaxBlockingWait)
	}
}

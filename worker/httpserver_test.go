package worker

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"couponpush/config"
)

// TestSlowHeadersAreCutOff: a client that sends its headers one byte every
// two seconds (a slowloris) has its connection closed once
// ReadHeaderTimeout has passed, long before its headers are done.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	cfg := config.Worker{HTTPReadHeaderTimeout: config.Duration(3 * time.Second)}.WithDefaults()
	served := make(chan struct{}, 1)
	srv := newHTTPServer(cfg, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served <- struct{}{} }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})

	// Timed from before the dial: the server's clock starts at accept, so
	// the close can never seem early.
	start := time.Now()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Far more header than the drip can send before the cut-off.
	header := []byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n")
	closed := make(chan error, 1)
	go func() { // the server's close ends this read
		_, err := io.Copy(io.Discard, conn)
		closed <- err
	}()
	drip := time.NewTicker(2 * time.Second)
	defer drip.Stop()
	limit := time.After(60 * time.Second)
	sent := 0
	for {
		select {
		case <-closed:
			took := time.Since(start)
			if sent >= len(header) {
				t.Fatalf("the whole header went out (%d bytes) before the close", sent)
			}
			if took < 3*time.Second {
				t.Fatalf("closed after %v, before ReadHeaderTimeout (3s)", took)
			}
			select {
			case <-served:
				t.Fatal("the handler ran for a request whose headers never ended")
			default:
			}
			return
		case <-drip.C:
			if _, err := conn.Write(header[sent : sent+1]); err != nil {
				continue // the server has closed; the read reports it
			}
			sent++
		case <-limit:
			t.Fatalf("still open after %v with %d bytes dripped; ReadHeaderTimeout is 3s", time.Since(start), sent)
		}
	}
}
